package platform

import (
	"errors"
	"math"
	"strings"
)

// CurrencyExponent is the number of minor-unit digits of a currency, from
// ISO 4217 list one; every other code has two. This is the one table: the
// services parse and store amounts with it and the storefront formats them
// with it, so an amount means the same everywhere.
func CurrencyExponent(currency string) int {
	switch currency {
	case "BIF", "CLP", "DJF", "GNF", "ISK", "JPY", "KMF", "KRW", "PYG", "RWF",
		"UGX", "UYI", "VND", "VUV", "XAF", "XOF", "XPF":
		return 0
	case "BHD", "IQD", "JOD", "KWD", "LYD", "OMR", "TND":
		return 3
	case "CLF", "UYW":
		return 4
	}
	return 2
}

// ValidCurrency reports whether c looks like an ISO 4217 code (three upper-case letters).
func ValidCurrency(c string) bool {
	if len(c) != 3 {
		return false
	}
	for i := 0; i < 3; i++ {
		if c[i] < 'A' || c[i] > 'Z' {
			return false
		}
	}
	return true
}

// ParseMoney parses a non-negative decimal amount such as "19.99" or "5" into
// minor units of currency ("19.99" EUR -> 1999). It rejects signs, exponents,
// thousands separators, more fraction digits than the currency has, and
// amounts that overflow int64.
func ParseMoney(s, currency string) (int64, error) {
	if !ValidCurrency(currency) {
		return 0, errors.New("currency must be three upper-case letters")
	}
	exp := CurrencyExponent(currency)
	whole, frac, hasDot := strings.Cut(s, ".")
	if whole == "" || (hasDot && frac == "") {
		return 0, errors.New("amount must look like 19.99")
	}
	if len(frac) > exp {
		return 0, errors.New("too many decimal places for the currency")
	}
	var v int64
	digit := func(c byte) (int64, error) {
		if c < '0' || c > '9' {
			return 0, errors.New("amount must contain only digits and one dot")
		}
		return int64(c - '0'), nil
	}
	add := func(c byte) error {
		d, err := digit(c)
		if err != nil {
			return err
		}
		if v > (math.MaxInt64-d)/10 {
			return errors.New("amount is too large")
		}
		v = v*10 + d
		return nil
	}
	for i := 0; i < len(whole); i++ {
		if err := add(whole[i]); err != nil {
			return 0, err
		}
	}
	for i := 0; i < exp; i++ {
		c := byte('0')
		if i < len(frac) {
			c = frac[i]
		}
		if err := add(c); err != nil {
			return 0, err
		}
	}
	return v, nil
}
