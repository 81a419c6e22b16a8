package loadgen

import (
	"errors"
	"math/rand/v2"
	"testing"

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
