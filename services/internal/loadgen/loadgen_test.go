package loadgen

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/shopplatform/shop-operator/services/internal/platform"
)

func TestParseMix(t *testing.T) {
	mix, err := ParseMix(DefaultMix)
	if err != nil || len(mix) != 4 || mix[0] != (Weighted{Browse, 60}) {
		t.Fatalf("%v %v", mix, err)
	}
	for _, bad := range []string{"", "browse", "browse=-1", "browse=x", "fly=1", "browse=0,search=0"} {
		if _, err := ParseMix(bad); err == nil {
			t.Errorf("accepted %q", bad)
		}
	}
}

func TestPickFollowsTheWeights(t *testing.T) {
	mix, _ := ParseMix("browse=3,search=1,cart=0")
	r := rand.New(rand.NewPCG(1, 2))
	n := map[string]int{}
	for range 4000 {
		n[pick(mix, r)]++
	}
	if n[Cart] != 0 || n[Browse] < 2700 || n[Browse] > 3300 || n[Search]+n[Browse] != 4000 {
		t.Fatalf("picks %v for weights 3:1:0", n)
	}
}

func TestOutcome(t *testing.T) {
	for err, want := range map[error]string{
		nil: OK,
		platform.NewProblem(409, "out_of_stock", ""):           ClientError,
		platform.NewProblem(503, "payment_unavailable", ""):    ServerError,
		errors.New("dial tcp 127.0.0.1:1: connection refused"): Transport,
	} {
		if got := Outcome(err); got != want {
			t.Errorf("Outcome(%v) = %s, want %s", err, got, want)
		}
	}
}

// The load generator waits for a shop whose catalog does not answer yet
// instead of exiting (a crash loop in a Deployment), and gives up only on
// configuration no retry can fix.
func TestNewWaitsForTheShop(t *testing.T) {
	var calls atomic.Int32
	shop := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case calls.Add(1) <= 2: // the catalog is still starting
			http.Error(w, `{"status":503,"code":"unavailable"}`, http.StatusServiceUnavailable)
		case r.URL.Path == "/api/catalog/products":
			fmt.Fprint(w, `{"products":[{"sku":"A-1","name":"a","price_minor":100,"currency":"EUR","stock":5}]}`)
		case r.URL.Path == "/api/auth/login":
			fmt.Fprint(w, `{"access_token":"t","refresh_token":"r"}`)
		default:
			w.WriteHeader(http.StatusCreated)
			fmt.Fprint(w, `{}`)
		}
	}))
	defer shop.Close()
	urls := URLs{Catalog: shop.URL, Auth: shop.URL, Orders: shop.URL, Frontend: shop.URL}
	mix, _ := ParseMix(DefaultMix)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	g, err := newWhenReachable(ctx, Config{Rate: 1, Mix: mix, Users: 1, URLs: urls}, nil, time.Millisecond, 5*time.Millisecond)
	if err != nil || g == nil || len(g.skus) != 1 {
		t.Fatalf("after the catalog answered: %v %v", g, err)
	}
	if calls.Load() < 3 {
		t.Fatalf("%d calls: the 503s were not retried", calls.Load())
	}
	if _, err := newWhenReachable(ctx, Config{URLs: urls}, nil, time.Millisecond, time.Millisecond); !errors.Is(err, errConfig) {
		t.Fatalf("a bad configuration was retried or not reported: %v", err)
	}
}
