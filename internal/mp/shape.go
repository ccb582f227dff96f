package mp

import (
	"fmt"
	"reflect"
	"strings"
)

// Shape describes the fields of the struct types of vs: names, types and
// tags. A hand-written codec compares it with the shape it was written for
// and falls back to reflection when a field was added, removed or retagged.
func Shape(vs ...any) string {
	var b strings.Builder
	for _, v := range vs {
		t := reflect.TypeOf(v)
		b.WriteString(t.String() + "{")
		for i := range t.NumField() {
			f := t.Field(i)
			if i > 0 {
				b.WriteByte(';')
			}
			fmt.Fprintf(&b, "%s %s %s", f.Name, f.Type, f.Tag)
		}
		b.WriteString("}")
	}
	return b.String()
}
