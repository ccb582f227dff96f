package auth_test

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ledgerworks/ledger/auth"
)

const (
	keyA = "UB3OR7XRM5IKFHWQ5AT5BCT3O6GR5MT6JQ6MUHBVDYHXJRZFCXF3BCGR"
	keyB = "UCEOA57ON5S6EFNOV6VWV2E6MQCG7VGAWZRXMULHAW2543GGGANQDWLS"
)

func TestParse(t *testing.T) {
	for _, c := range []struct {
		name, in string
		field    string // the FileError's field; "-" for a whole-file error; "" when valid
	}{
		{"empty list", `{"users":[]}`, ""},
		{"every role", `{"users":[
			{"name":"p","role":"producer","tenant":"acme","nkey":"` + keyA + `"},
			{"name":"s","role":"service","tenant":"acme","nkey":"` + keyB + `"}]}`, ""},
		{"admin of all", `{"users":[{"name":"a","role":"admin","nkey":"` + keyA + `"}]}`, ""},
		{"admin of one", `{"users":[{"name":"a","role":"admin","tenant":"acme","nkey":"` + keyA + `"}]}`, ""},
		{"auditor", `{"users":[{"name":"a","role":"auditor","nkey":"` + keyA + `","added":"2026-12-07T05:00:00Z"}]}`, ""},
		{"not json", `users: []`, "-"},
		{"two values", `{"users":[]}{}`, "-"},
		{"unknown field", `{"users":[],"admins":[]}`, "-"},
		{"unknown user field", `{"users":[{"name":"a","role":"auditor","nkey":"` + keyA + `","password":"x"}]}`, "-"},
		{"no name", `{"users":[{"role":"auditor","nkey":"` + keyA + `"}]}`, "name"},
		{"dotted name", `{"users":[{"name":"a.b","role":"auditor","nkey":"` + keyA + `"}]}`, "name"},
		{"long name", `{"users":[{"name":"` + strings.Repeat("a", 65) + `","role":"auditor","nkey":"` + keyA + `"}]}`, "name"},
		{"unknown role", `{"users":[{"name":"a","role":"root","nkey":"` + keyA + `"}]}`, "role"},
		{"service without tenant", `{"users":[{"name":"a","role":"service","nkey":"` + keyA + `"}]}`, "tenant"},
		{"producer without tenant", `{"users":[{"name":"a","role":"producer","nkey":"` + keyA + `"}]}`, "tenant"},
		{"auditor with tenant", `{"users":[{"name":"a","role":"auditor","tenant":"acme","nkey":"` + keyA + `"}]}`, "tenant"},
		{"ledger with tenant", `{"users":[{"name":"a","role":"ledger","tenant":"acme","nkey":"` + keyA + `"}]}`, "tenant"},
		{"tenant with a dot", `{"users":[{"name":"a","role":"service","tenant":"ac.me","nkey":"` + keyA + `"}]}`, "tenant"},
		{"tenant wildcard", `{"users":[{"name":"a","role":"admin","tenant":"*","nkey":"` + keyA + `"}]}`, "tenant"},
		{"no key", `{"users":[{"name":"a","role":"auditor"}]}`, "nkey"},
		{"seed instead of key", `{"users":[{"name":"a","role":"auditor","nkey":"SAAICFBSRMKNAAFL5TTRCX6S3UP3ZAXICULPCMPLK2HR3H64GLYGKPT32I"}]}`, "nkey"},
		{"account key", `{"users":[{"name":"a","role":"auditor","nkey":"AD3MHP6T4HGE36CPN3KY5M52ZE25QQAU5PPKPJUQCX4ASVLZU6OVJMV3"}]}`, "nkey"},
		{"same name twice", `{"users":[{"name":"a","role":"auditor","nkey":"` + keyA + `"},{"name":"a","role":"auditor","nkey":"` + keyB + `"}]}`, "name"},
		{"same key twice", `{"users":[{"name":"a","role":"auditor","nkey":"` + keyA + `"},{"name":"b","role":"auditor","nkey":"` + keyA + `"}]}`, "nkey"},
	} {
		t.Run(c.name, func(t *testing.T) {
			f, err := auth.Parse([]byte(c.in))
			if c.field == "" {
				if err != nil {
					t.Fatalf("Parse: %v", err)
				}
				if f == nil {
					t.Fatal("nil file")
				}
				return
			}
			if !errors.Is(err, auth.ErrInvalidFile) {
				t.Fatalf("Parse: %v, want an ErrInvalidFile", err)
			}
			var fe *auth.FileError
			if !errors.As(err, &fe) {
				t.Fatalf("%v is not a *FileError", err)
			}
			if got := fe.Field; (c.field == "-" && fe.User != -1) || (c.field != "-" && got != c.field) {
				t.Errorf("error %q: user %d field %q, want field %q", err, fe.User, got, c.field)
			}
		})
	}
}

func TestAddRevokeSaveLoad(t *testing.T) {
	path := filepath.Join(t.TempDir(), "auth.json")
	f := &auth.File{}
	if err := f.Add(auth.User{Name: "svc", Role: auth.RoleService, Tenant: "acme", NKey: keyA}); err != nil {
		t.Fatal(err)
	}
	if err := f.Add(auth.User{Name: "svc", Role: auth.RoleAuditor, NKey: keyB}); !errors.Is(err, auth.ErrUserExists) {
		t.Errorf("second svc: %v, want ErrUserExists", err)
	}
	if err := f.Add(auth.User{Name: "bad", Role: auth.RoleService, NKey: keyB}); !errors.Is(err, auth.ErrInvalidFile) {
		t.Errorf("service without tenant: %v, want ErrInvalidFile", err)
	}
	if len(f.Users) != 1 {
		t.Fatalf("%d users after a refused add, want 1", len(f.Users))
	}
	if err := f.Add(auth.User{Name: "aud", Role: auth.RoleAuditor, NKey: keyB}); err != nil {
		t.Fatal(err)
	}
	if err := f.Save(path); err != nil {
		t.Fatal(err)
	}
	g, err := auth.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(g.Users) != 2 || g.Lookup("svc").Tenant != "acme" || g.Lookup("aud").Role != auth.RoleAuditor {
		t.Fatalf("loaded %+v", g.Users)
	}
	if err := g.Revoke("svc"); err != nil {
		t.Fatal(err)
	}
	if err := g.Revoke("svc"); !errors.Is(err, auth.ErrNoSuchUser) {
		t.Errorf("second revoke: %v, want ErrNoSuchUser", err)
	}
	if g.Lookup("svc") != nil || len(g.Users) != 1 {
		t.Errorf("after revoke: %+v", g.Users)
	}
}

// FuzzParse: no input panics the parser, and whatever it accepts is a
// valid file that saves and parses back the same.
func FuzzParse(f *testing.F) {
	f.Add([]byte(`{"users":[]}`))
	f.Add([]byte(`{"users":[{"name":"p","role":"producer","tenant":"acme","nkey":"` + keyA + `"}]}`))
	f.Add([]byte(`{"users":[{"name":"a","role":"admin","nkey":"` + keyA + `"},{"name":"b","role":"auditor","nkey":"` + keyB + `"}]}`))
	f.Add([]byte(`{"users":[{"name":"a","role":"root","nkey":"x"}]}`))
	f.Add([]byte(`{"users":null}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, data []byte) {
		file, err := auth.Parse(data)
		if err != nil {
			if !errors.Is(err, auth.ErrInvalidFile) {
				t.Fatalf("error %v is not an ErrInvalidFile", err)
			}
			return
		}
		if err := file.Validate(); err != nil {
			t.Fatalf("accepted an invalid file: %v", err)
		}
		path := filepath.Join(t.TempDir(), "auth.json")
		if err := file.Save(path); err != nil {
			t.Fatalf("save: %v", err)
		}
		again, err := auth.Load(path)
		if err != nil {
			t.Fatalf("load what was saved: %v", err)
		}
		if len(again.Users) != len(file.Users) {
			t.Fatalf("%d users saved, %d loaded", len(file.Users), len(again.Users))
		}
		for i := range file.Users {
			a, b := file.Users[i], again.Users[i]
			if a.Name != b.Name || a.Role != b.Role || a.Tenant != b.Tenant || a.NKey != b.NKey || !a.Added.Equal(b.Added) {
				t.Fatalf("user %d saved %+v, loaded %+v", i, a, b)
			}
		}
	})
}
