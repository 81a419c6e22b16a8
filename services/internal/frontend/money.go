package frontend

import (
	"strconv"
	"strings"

	"github.com/shopplatform/shop-operator/services/internal/platform"
)

var currencySymbol = map[string]string{
	"EUR": "€", "USD": "$", "GBP": "£", "JPY": "¥", "CHF": "CHF ",
}

// FormatMoney renders an amount in minor units, e.g. (1999, "EUR") -> "€19.99".
// It never panics, whatever the input.
func FormatMoney(minor int64, currency string) string {
	cur := strings.ToUpper(strings.TrimSpace(currency))
	// The services' own table: what they parse is what is shown.
	exp := platform.CurrencyExponent(cur)
	neg := minor < 0
	var abs uint64
	if neg {
		abs = uint64(-(minor + 1)) + 1 // safe for math.MinInt64
	} else {
		abs = uint64(minor)
	}
	digits := strconv.FormatUint(abs, 10)
	var num string
	if exp == 0 {
		num = groupThousands(digits)
	} else {
		for len(digits) <= exp {
			digits = "0" + digits
		}
		num = groupThousands(digits[:len(digits)-exp]) + "." + digits[len(digits)-exp:]
	}
	sign := ""
	if neg {
		sign = "-"
	}
	if sym, ok := currencySymbol[cur]; ok {
		return sign + sym + num
	}
	if cur == "" {
		return sign + num
	}
	return sign + num + " " + cur
}

func groupThousands(s string) string {
	if len(s) <= 3 {
		return s
	}
	var b strings.Builder
	pre := len(s) % 3
	if pre > 0 {
		b.WriteString(s[:pre])
	}
	for i := pre; i < len(s); i += 3 {
		if b.Len() > 0 {
			b.WriteByte(',')
		}
		b.WriteString(s[i : i+3])
	}
	return b.String()
}
