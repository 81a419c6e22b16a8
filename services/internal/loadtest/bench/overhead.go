package main

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/shopplatform/shop-operator/services/internal/loadtest"
)

// overhead measures the telemetry overhead of the in-process catalog listing
// on a shared machine: each variant runs at the same time as a telemetry-off
// run (two processes), so outside load hits both alike, and the per-pair
// differences in CPU per request are summarised by their median. The
// off-against-off pair shows what the method can resolve.
func overhead(ctx context.Context) error {
	if *flagDB == "" {
		return errors.New("-db is required")
	}
	type variant struct{ name, tel, ratio string }
	off := variant{"telemetry off", "false", ""}
	variants := []variant{
		{"telemetry off (resolution: off against off)", "false", ""},
		{"telemetry ON, every request traced", "true", ""},
		{"telemetry ON, 10 % head-sampled", "true", "0.1"},
	}
	diffs := make([][]float64, len(variants))
	fmt.Printf("# telemetry overhead, %d rounds of concurrent pairs, %d requests per run\n", *flagRounds, *flagN)
	for round := range *flagRounds {
		for i, v := range variants {
			var (
				wg     sync.WaitGroup
				rs     [2]loadtest.Result
				errs   [2]error
				params = [2]variant{off, v}
			)
			for j := range params {
				wg.Go(func() { rs[j], errs[j] = inprocRun(ctx, *flagDB, "catalog", params[j].tel, params[j].ratio) })
			}
			wg.Wait()
			if err := errors.Join(errs[:]...); err != nil {
				return err
			}
			d := float64(rs[1].CPUPerRequest-rs[0].CPUPerRequest) / float64(rs[0].CPUPerRequest) * 100
			diffs[i] = append(diffs[i], d)
			fmt.Printf("round %d, load %s: %-45s %s vs off %s: %+.1f %%\n", round+1, loadavg(), v.name,
				rs[1].CPUPerRequest.Round(100*time.Nanosecond), rs[0].CPUPerRequest.Round(100*time.Nanosecond), d)
		}
	}
	fmt.Println("\n| variant | CPU per request vs off, paired median | range | pairs |\n| --- | ---: | ---: | ---: |")
	for i, v := range variants {
		d := slices.Sorted(slices.Values(diffs[i]))
		fmt.Printf("| %s | %+.1f %% | %+.0f … %+.0f %% | %d |\n", v.name, d[len(d)/2], d[0], d[len(d)-1], len(d))
	}
	return nil
}
