package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime"
	"runtime/pprof"
	"strings"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/shopplatform/shop-operator/services/internal/loadtest"
	"github.com/shopplatform/shop-operator/services/internal/platform"
)

// discard is a span exporter that drops spans after the batch processor
// has done all of its work (what an OTLP exporter costs minus the network).
type discard struct{}

func (discard) ExportSpans(context.Context, []sdktrace.ReadOnlySpan) error { return nil }
func (discard) Shutdown(context.Context) error                             { return nil }

// inproc serves one handler on a loopback httptest server in this process
// and drives it; the result goes to stdout as JSON.
func inproc(ctx context.Context) error {
	name := *flagWhat
	var h http.Handler
	switch *flagWhat {
	case "bare":
		// The floor: net/http alone, answering a fixed JSON body the size of
		// a catalog page.
		body := bareBody()
		h = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write(body)
		})
		name = "bare net/http handler (floor)"
	case "catalog":
		if *flagDB == "" {
			return errors.New("-db is required")
		}
		if *flagTel {
			cfg, err := platform.LoadConfig("catalog")
			if err != nil {
				return err
			}
			cfg.OTLPEndpoint = ""
			tel, err := platform.SetupTelemetry(ctx, cfg, &platform.TelemetryOptions{
				LogOutput:      io.Discard,
				SpanProcessors: []sdktrace.SpanProcessor{sdktrace.NewBatchSpanProcessor(discard{})},
			})
			if err != nil {
				return err
			}
			defer tel.Shutdown(context.Background())
			name = "catalog list in-process, telemetry ON"
			if os.Getenv("OTEL_TRACES_SAMPLER") == "parentbased_traceidratio" {
				name += ", " + os.Getenv("OTEL_TRACES_SAMPLER_ARG") + " sampled"
			}
		} else {
			name = "catalog list in-process, telemetry off"
		}
		// Built after the providers are set: with telemetry off the
		// OpenTelemetry globals stay no-ops.
		app, closeFn, err := catalogHandler(ctx, *flagDB)
		if err != nil {
			return err
		}
		defer closeFn()
		h = platform.Handler("catalog", app)
	default:
		return fmt.Errorf("-what: unknown %q", *flagWhat)
	}
	srv := httptest.NewServer(h)
	defer srv.Close()
	url := srv.URL + "/api/catalog/products?page_size=20"
	c := loadtest.Client(*flagConc)
	if *flagProf != "" {
		f, err := os.Create(*flagProf)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	// CPU: this whole process, load driver included (the same in every variant).
	r, err := loadtest.Run(ctx, loadtest.Config{Name: name, Concurrency: *flagConc, Requests: *flagN, Duration: *flagDur, Warmup: 200, CPU: loadtest.SelfCPU,
		Do: func(ctx context.Context, _, _ int) error { return fetch(ctx, c, "GET", url, nil, nil, http.StatusOK) }})
	if err != nil {
		return err
	}
	if *flagMemProf != "" {
		f, err := os.Create(*flagMemProf)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.Lookup("allocs").WriteTo(f, 0); err != nil {
			return err
		}
	}
	if *flagAllocs {
		// Warm-up requests included: the same in every variant. Unlike CPU
		// time this does not depend on outside load.
		var after runtime.MemStats
		runtime.ReadMemStats(&after)
		n := float64(r.Requests + 200)
		fmt.Fprintf(os.Stderr, "%s: %.1f allocs, %.0f bytes per request\n", name,
			float64(after.Mallocs-before.Mallocs)/n, float64(after.TotalAlloc-before.TotalAlloc)/n)
	}
	return json.NewEncoder(os.Stdout).Encode(r)
}

func bareBody() []byte {
	type p struct {
		SKU, Name, Description, Currency, Category, ImageURL string
		PriceMinor, Stock                                    int
	}
	var page struct {
		Products      []p    `json:"products"`
		NextPageToken string `json:"next_page_token"`
	}
	for i := range 20 {
		page.Products = append(page.Products, p{SKU: fmt.Sprintf("BOOK-%03d", i), Name: "A product name of ordinary length",
			Description: strings.Repeat("A description of the product. ", 6), Currency: "EUR", Category: "books",
			ImageURL: fmt.Sprintf("/static/img/book-%03d.svg", i), PriceMinor: 1999, Stock: 12})
	}
	page.NextPageToken = "eyJvZmZzZXQiOjIwfQ"
	b, _ := json.Marshal(page)
	return b
}
