package events

import "github.com/ledgerworks/ledger/internal/mp"

// AmountFieldNames are the msgpack (and JSON) field names of Amounts, in
// encoding order.
var AmountFieldNames = [...]string{"tokens", "input_tokens", "output_tokens", "requests", "cost", "actions"}

// MsgpackFields is how many map entries AppendMsgpackFields writes: one per
// non-zero amount, and one for actions when there are any.
func (a *Amounts) MsgpackFields() int {
	n := 0
	for _, v := range [5]int64{a.Tokens, a.InputTokens, a.OutputTokens, a.Requests, a.Cost} {
		if v != 0 {
			n++
		}
	}
	if len(a.Actions) > 0 {
		n++
	}
	return n
}

// AppendMsgpack writes the amounts as a map of their own: a header, then
// AppendMsgpackFields.
func (a *Amounts) AppendMsgpack(b []byte, appendInt func([]byte, int64) []byte) []byte {
	return a.AppendMsgpackFields(mp.AppendMapLen(b, a.MsgpackFields()), appendInt)
}

// AppendMsgpackFields writes the non-zero amounts as map entries (without a
// map header), as the msgpack encoder does with omitempty fields: in field
// order, actions with sorted names. appendInt writes an integer: compact
// (mp.AppendInt) or in nine bytes (mp.AppendInt64), as the caller's reference
// encoder does. The hand-written codecs of every type holding Amounts share it.
func (a *Amounts) AppendMsgpackFields(b []byte, appendInt func([]byte, int64) []byte) []byte {
	for i, v := range [5]int64{a.Tokens, a.InputTokens, a.OutputTokens, a.Requests, a.Cost} {
		if v != 0 {
			b = mp.AppendStr(b, AmountFieldNames[i])
			b = appendInt(b, v)
		}
	}
	if len(a.Actions) > 0 {
		b = mp.AppendStr(b, AmountFieldNames[5])
		var buf [12]string
		keys := mp.SortedKeys(a.Actions, buf[:])
		b = mp.AppendMapLen(b, len(keys))
		for _, k := range keys {
			b = mp.AppendStr(b, k)
			b = appendInt(b, a.Actions[k])
		}
	}
	return b
}
