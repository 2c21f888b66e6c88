package eventstore_test

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/agora-commerce/agora/eventstore"
)

// FuzzUpcast passes records of arbitrary type, schema version and data
// through a chain of upcasters (v1 → v2 → v3 of "NameSet"): nothing
// panics; a record no upcaster reads comes back unchanged; one that is
// upcast ends at v3, or fails with an error naming its type, and keeps
// its type.
func FuzzUpcast(f *testing.F) {
	var up eventstore.Upcasters
	up.Register("NameSet", 1, func(d json.RawMessage) (json.RawMessage, error) {
		var v struct{ Name string }
		if err := json.Unmarshal(d, &v); err != nil {
			return nil, err
		}
		first, last, _ := strings.Cut(v.Name, " ")
		return json.Marshal(map[string]string{"first": first, "last": last})
	})
	up.Register("NameSet", 2, func(d json.RawMessage) (json.RawMessage, error) {
		var v map[string]any
		if err := json.Unmarshal(d, &v); err != nil {
			return nil, err
		}
		if v == nil {
			v = map[string]any{}
		}
		v["nickname"] = v["first"]
		return json.Marshal(v)
	})
	for _, s := range []struct {
		typ  string
		v    int
		data string
	}{
		{"NameSet", 1, `{"Name":"Ada Lovelace"}`}, {"NameSet", 2, `{"first":"Ada","last":""}`}, {"NameSet", 3, `{}`},
		{"NameSet", 1, `null`}, {"NameSet", 1, `{"Name":1}`}, {"NameSet", 2, `[]`}, {"NameSet", 0, `x`},
		{"NameSet", -1, ``}, {"Other", 1, `{"Name":"x"}`}, {"nameset", 1, `{}`},
	} {
		f.Add(s.typ, s.v, []byte(s.data))
	}
	f.Fuzz(func(t *testing.T, typ string, version int, data []byte) {
		in := eventstore.Record{Type: typ, SchemaVersion: version, Position: 7, Data: json.RawMessage(data)}
		if r, err := (*eventstore.Upcasters)(nil).Upcast(in); err != nil || r.SchemaVersion != version || !bytes.Equal(r.Data, data) {
			t.Fatalf("no upcasters changed %s v%d: %+v %v", typ, version, r, err)
		}
		r, err := up.Upcast(in)
		if r.Type != typ {
			t.Fatalf("upcasting %s changed its type to %s", typ, r.Type)
		}
		if typ != "NameSet" || version < 1 || version > 2 {
			if err != nil || r.SchemaVersion != version || !bytes.Equal(r.Data, data) {
				t.Fatalf("%s v%d, which no upcaster reads, came back as v%d %s (%v)", typ, version, r.SchemaVersion, r.Data, err)
			}
			return
		}
		if err != nil {
			if !strings.Contains(err.Error(), typ) {
				t.Fatalf("error without the type: %v", err)
			}
			return
		}
		if r.SchemaVersion != 3 || !json.Valid(r.Data) {
			t.Fatalf("%s v%d %q upcast to v%d %s", typ, version, data, r.SchemaVersion, r.Data)
		}
	})
}
