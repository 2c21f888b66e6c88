package money_test

import (
	"encoding/json"
	"fmt"

	"github.com/agora-commerce/agora/money"
)

func Example() {
	price, _ := money.Parse(1999, "USD")
	shipping, _ := money.Parse(500, "USD")
	total, _ := price.Add(shipping)
	fmt.Println(total)

	b, _ := json.Marshal(total)
	fmt.Println(string(b))

	yen, _ := money.Parse(100, "JPY")
	_, err := total.Add(yen)
	fmt.Println(err)
	// Output:
	// 24.99 USD
	// {"amount":2499,"currency":"USD"}
	// money: currency mismatch: USD and JPY
}
