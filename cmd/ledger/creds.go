package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/ledgerworks/ledger/auth"
	"github.com/ledgerworks/ledger/internal/cli"
)

const credsHelp = `Every command takes --auth FILE, the credentials file of "ledger serve --auth
FILE"; a running ledger reloads it within a second of a change.

Roles: producer and service (of one --tenant), admin (of one --tenant, or of
all), auditor, ledger, projector. docs/SECURITY.md has what each may do.`

// credsCommands are ledger creds's.
var credsCommands = []cli.Command{
	{Name: "add", Summary: "add a user to FILE and write its nkey seed file (--out)", Run: credsAddCmd},
	{Name: "revoke", Summary: `remove a user from FILE: a running "ledger serve --auth FILE" disconnects it within a second`, Run: credsRevokeCmd},
	{Name: "ls", Summary: "list FILE's users: name, role, tenant, inbox prefix, key", Run: credsLsCmd},
	{Name: "config", Summary: "print the nats-server authorization block of FILE's users, for an external cluster (include it, then nats-server --signal reload)", Run: credsConfigCmd},
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
