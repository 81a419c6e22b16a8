package platform

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

func TestParseMoney(t *testing.T) {
	good := map[[2]string]int64{
		{"19.99", "EUR"}: 1999, {"5", "EUR"}: 500, {"0.5", "USD"}: 50, {"0", "EUR"}: 0,
		{"1200", "JPY"}: 1200, {"1.234", "KWD"}: 1234, {"007.10", "EUR"}: 710,
		{"92233720368547758.07", "EUR"}: 9223372036854775807,
	}
	for in, want := range good {
		got, err := ParseMoney(in[0], in[1])
		if err != nil || got != want {
			t.Errorf("ParseMoney(%q, %s) = %d, %v; want %d", in[0], in[1], got, err, want)
		}
	}
	for _, in := range [][2]string{{"", "EUR"}, {"-1", "EUR"}, {"1.999", "EUR"}, {"1.", "EUR"}, {".5", "EUR"},
		{"1e3", "EUR"}, {"1,000", "EUR"}, {"1.5", "JPY"}, {"92233720368547758.08", "EUR"}, {"1", "eur"}, {"+1", "EUR"}, {"1.2.3", "EUR"}} {
		if v, err := ParseMoney(in[0], in[1]); err == nil {
			t.Errorf("ParseMoney(%q, %s) = %d, want an error", in[0], in[1], v)
		}
	}
}

// FuzzParseMoney: never panics, never negative, and round-trips through formatting.
func FuzzParseMoney(f *testing.F) {
	for _, s := range []string{"19.99", "0", "1.5", "-1", "1e9", "9999999999999999999", "0.001", ".", "1..2", "١٢"} {
		f.Add(s, "EUR")
	}
	f.Add("100", "JPY")
	f.Add("1.234", "KWD")
	f.Fuzz(func(t *testing.T, s, cur string) {
		v, err := ParseMoney(s, cur)
		if err != nil {
			return
		}
		if v < 0 {
			t.Fatalf("negative %d from %q", v, s)
		}
		// Re-format and parse again: the same value.
		exp := CurrencyExponent(cur)
		str := strconv.FormatInt(v, 10)
		for len(str) <= exp {
			str = "0" + str
		}
		if exp > 0 {
			str = str[:len(str)-exp] + "." + str[len(str)-exp:]
		}
		v2, err := ParseMoney(str, cur)
		if err != nil || v2 != v {
			t.Fatalf("round trip %q -> %d -> %q -> %d, %v", s, v, str, v2, err)
		}
	})
}

// TestCurrencyExponentISO4217 holds the one minor-units table of the
// services and the storefront against ISO 4217 list one
// (testdata/iso4217.txt): every active code, not only the ones a catalog
// uses today, so that prices in UGX, XOF, XAF, IQD or LYD mean the same
// amount everywhere.
func TestCurrencyExponentISO4217(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("testdata", "iso4217.txt"))
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, line := range strings.Split(string(b), "\n") {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		code, units, ok := strings.Cut(line, " ")
		want, err := strconv.Atoi(units)
		if !ok || err != nil {
			t.Fatalf("testdata/iso4217.txt: bad line %q", line)
		}
		if got := CurrencyExponent(code); got != want {
			t.Errorf("CurrencyExponent(%s) = %d, ISO 4217 says %d", code, got, want)
		}
		n++
	}
	if n < 150 {
		t.Fatalf("testdata/iso4217.txt lists %d currencies: truncated?", n)
	}
}
