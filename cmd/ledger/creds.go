package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/ledgerworks/ledger/auth"
	"github.com/ledgerworks/ledger/internal/cli"
)

const credsHelp = `Every command takes --auth FILE, the credentials file of "ledger serve --auth
FILE"; a running ledger reloads it within a second of a change (token only
checks its user there when given it).

Roles: producer and service (of one --tenant), admin (of one --tenant, or of
all), auditor, ledger, projector. docs/SECURITY.md has what each may do.`

// credsCommands are ledger creds's.
var credsCommands = []cli.Command{
	{Name: "add", Summary: "add a user to FILE and write its nkey seed file (--out)", Run: credsAddCmd},
	{Name: "revoke", Summary: `remove a user from FILE: a running "ledger serve --auth FILE" disconnects it within a second`, Run: credsRevokeCmd},
	{Name: "ls", Summary: "list FILE's users: name, role, tenant, inbox prefix, key", Run: credsLsCmd},
	{Name: "config", Summary: "print the nats-server authorization block of FILE's users, for an external cluster (include it, then nats-server --signal reload)", Run: credsConfigCmd},
	{Name: "token", Summary: "print a sign-in token for the web dashboard, signed with an admin's or auditor's seed (--nkey)", Help: credsTokenHelp, Run: credsTokenCmd},
}

// authFlag adds --auth, which every creds command requires.
func authFlag(call *cli.Call) *string {
	return call.Flags().String("auth", "", "credentials file (created by the first add; required)")
}

// parseCreds parses a creds command's flags; --auth is required.
func parseCreds(call *cli.Call, args []string, path *string) error {
	if err := call.Parse(args); err != nil {
		return err
	}
	if *path == "" {
		return cli.Usagef("--auth FILE is required")
	}
	return nil
}

func credsAddCmd(_ context.Context, call *cli.Call, args []string) error {
	path := authFlag(call)
	fs := call.Flags()
	name := fs.String("name", "", "the user's name: 1-64 of [A-Za-z0-9_-]")
	role := fs.String("role", "", "producer, service, admin, auditor, ledger or projector")
	tenant := fs.String("tenant", "", "the tenant a producer or service acts for, or an admin is confined to")
	out := fs.String("out", "", "where to write the user's nkey seed (not overwritten; mode 0600; required)")
	nctx := fs.String("context", "", "also write a NATS CLI context file here (a .json path: nats --context PATH) with the seed, the inbox prefix and --url")
	url := fs.String("url", "nats://127.0.0.1:4222", "the server URL --context names")
	if err := parseCreds(call, args, path); err != nil {
		return err
	}
	return credsAdd(*path, auth.User{Name: *name, Role: auth.Role(*role), Tenant: *tenant}, *out, *nctx, *url, call.Stdout)
}

func credsRevokeCmd(_ context.Context, call *cli.Call, args []string) error {
	path := authFlag(call)
	name := call.Flags().String("name", "", "the user to remove")
	if err := parseCreds(call, args, path); err != nil {
		return err
	}
	f, err := auth.Load(*path)
	if err != nil {
		return err
	}
	if err := f.Revoke(*name); err != nil {
		return err
	}
	if err := f.Save(*path); err != nil {
		return err
	}
	fmt.Fprintf(call.Stdout, "revoked %s: a ledger serving %s disconnects it within a second; regenerate an external cluster's config (ledger creds config) and reload it\n", *name, *path)
	return nil
}

func credsLsCmd(_ context.Context, call *cli.Call, args []string) error {
	path := authFlag(call)
	if err := parseCreds(call, args, path); err != nil {
		return err
	}
	f, err := auth.Load(*path)
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(call.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tROLE\tTENANT\tADDED\tINBOX PREFIX")
	for _, u := range f.Users {
		tenant := u.Tenant
		if tenant == "" {
			tenant = "*"
		}
		added := "-"
		if !u.Added.IsZero() {
			added = u.Added.UTC().Format(time.RFC3339)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", u.Name, u.Role, tenant, added, auth.InboxPrefix(u.NKey))
	}
	return tw.Flush()
}

func credsConfigCmd(_ context.Context, call *cli.Call, args []string) error {
	path := authFlag(call)
	if err := parseCreds(call, args, path); err != nil {
		return err
	}
	f, err := auth.Load(*path)
	if err != nil {
		return err
	}
	_, err = io.WriteString(call.Stdout, auth.ServerConfig(f))
	return err
}

func credsAdd(path string, u auth.User, out, nctx, url string, stdout io.Writer) error {
	if out == "" {
		return cli.Usagef("--out PATH is required: the user's seed is written there, and only there")
	}
	if nctx != "" && !strings.HasSuffix(nctx, ".json") {
		return cli.Usagef("--context: the NATS CLI reads a context file by path only when it ends in .json")
	}
	f, err := auth.Load(path)
	if errors.Is(err, os.ErrNotExist) {
		f, err = &auth.File{}, nil
	}
	if err != nil {
		return err
	}
	id, err := auth.NewIdentity()
	if err != nil {
		return err
	}
	u.NKey, u.Added = id.PublicKey(), time.Now().UTC().Truncate(time.Second)
	if err := f.Add(u); err != nil {
		return err
	}
	if err := id.WriteSeed(out, u); err != nil {
		return fmt.Errorf("--out: %w", err)
	}
	if nctx != "" {
		if err := writeNATSContext(nctx, out, url, u); err != nil {
			os.Remove(out)
			return fmt.Errorf("--context: %w", err)
		}
	}
	if err := f.Save(path); err != nil {
		os.Remove(out)
		if nctx != "" {
			os.Remove(nctx)
		}
		return err
	}
	fmt.Fprintf(stdout, "added %s (%s) to %s; seed in %s\nuse it: nats --nkey %s --inbox-prefix %s ...\n", u.Name, u.Role, path, out, out, auth.InboxPrefix(u.NKey))
	if nctx != "" {
		fmt.Fprintf(stdout, "    or: nats --context %s ...\n", nctx)
	}
	return nil
}

// writeNATSContext writes a NATS CLI context file for u: the server, the
// seed file (by absolute path) and the user's inbox prefix, which its
// permissions require.
func writeNATSContext(path, seed, url string, u auth.User) error {
	abs, err := filepath.Abs(seed)
	if err != nil {
		return err
	}
	data, err := json.MarshalIndent(map[string]string{
		"description":  "ledger user " + u.Name + " (" + string(u.Role) + ")",
		"url":          url,
		"nkey":         abs,
		"inbox_prefix": auth.InboxPrefix(u.NKey),
	}, "", "  ")
	if err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	_, err = f.Write(append(data, '\n'))
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

const credsTokenHelp = `The token is the user's public key and an expiry, signed with the seed: the
seed itself never leaves this machine. Paste the token into the dashboard's
sign-in form (ledger serve --auth FILE --http ADDR). The dashboard checks it
against FILE's users on every request, so revoking the user ends it at once.`

func credsTokenCmd(_ context.Context, call *cli.Call, args []string) error {
	fs := call.Flags()
	path := fs.String("auth", "", "credentials file: when given, the key must be an admin or auditor there")
	nkey := fs.String("nkey", "", "the user's nkey seed file, as creds add --out wrote it (required)")
	ttl := fs.Duration("ttl", auth.DefaultTokenTTL, "how long the token signs in, at most 744h")
	if err := call.Parse(args); err != nil {
		return err
	}
	if *nkey == "" {
		return cli.Usagef("--nkey FILE is required: the seed of the admin or auditor the token signs in")
	}
	if *ttl <= 0 || *ttl > auth.MaxTokenTTL {
		return cli.Usagef("--ttl %s: more than 0 and at most %s", *ttl, auth.MaxTokenTTL)
	}
	return credsToken(*path, *nkey, *ttl, call.Stdout, call.Stderr)
}

// credsToken prints a dashboard sign-in token of the seed's user (package
// auth's token): the token alone on stdout, what it is on stderr. With a
// credentials file it first checks that the key is an admin or auditor
// there, which is what the dashboard will check.
func credsToken(path, nkey string, ttl time.Duration, stdout, stderr io.Writer) error {
	id, err := auth.LoadIdentity(nkey)
	if err != nil {
		return err
	}
	who := id.PublicKey()
	if path != "" {
		f, err := auth.Load(path)
		if err != nil {
			return err
		}
		i := slices.IndexFunc(f.Users, func(u auth.User) bool { return u.NKey == id.PublicKey() })
		if i < 0 {
			return fmt.Errorf("%s: the key of %s is not a user there (revoked, or another file)", path, nkey)
		}
		u := f.Users[i]
		if u.Role != auth.RoleAdmin && u.Role != auth.RoleAuditor {
			return fmt.Errorf("%s is a %s: only admins and auditors sign in to the dashboard", u.Name, u.Role)
		}
		who = u.Name + " (" + string(u.Role)
		if u.Tenant != "" {
			who += " of " + u.Tenant
		}
		who += ")"
	}
	token, exp, err := auth.NewToken(id, ttl, time.Now())
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, token)
	fmt.Fprintf(stderr, "token of %s, valid until %s: paste it into the dashboard's sign-in form; revoking the user ends it at once\n", who, exp.UTC().Format(time.RFC3339))
	return nil
}
