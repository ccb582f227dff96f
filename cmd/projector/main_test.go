package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ledgerworks/ledger/client"
	"github.com/ledgerworks/ledger/internal/ledgertest"
	rt "github.com/ledgerworks/ledger/replay/replaytest"
)

func projectorCmd(t *testing.T, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var out, errOut bytes.Buffer
	err := run(ctx, args, &out, &errOut)
	if err != nil {
		t.Logf("stderr: %s", errOut.String())
	}
	return out.String(), err
}

// digestLine is the "digest sha256:... applied_seq=N" line of an output.
func digestLine(t *testing.T, out string) string {
	t.Helper()
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, "digest sha256:") {
			return l
		}
	}
	t.Fatalf("no digest in %q", out)
	return ""
}

// projector serve runs a projector; rebuild, digest and checkpoint agree
// with it: the rebuilt projection, the one resumed after
// a stop, and the one rebuilt from a checkpoint all have its digest.
func TestProjectorCommands(t *testing.T) {
	srv, js := rt.Stream(t)
	url := srv.URL()
	bs := rt.Generate(rt.GenOptions{Seed: 11, Events: 3_000, Tenants: 4, Start: time.Date(2026, 3, 29, 0, 0, 0, 0, time.UTC), TZ: "Europe/Berlin"})
	seqs := rt.AppendAll(t, js, bs)
	last := seqs[len(seqs)-1]

	// The projector itself, until it has folded everything.
	live := filepath.Join(t.TempDir(), "live")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		var errOut bytes.Buffer
		done <- run(ctx, []string{"serve", "--nats-url", url, "--data", live, "--member", "live", "--log-level", "error"}, &bytes.Buffer{}, &errOut)
	}()
	c, err := client.New(ledgertest.Connect(t, url))
	if err != nil {
		t.Fatal(err)
	}
	ledgertest.Eventually(t, 30*time.Second, "the projector to fold the stream", func() bool {
		qctx, qcancel := context.WithTimeout(context.Background(), time.Second)
		defer qcancel()
		st, err := c.Member(qctx, "live")
		return err == nil && st.AppliedSeq == last && st.Ready && st.Lag == 0
	})
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("projector: %v", err)
	}
	out, err := projectorCmd(t, "digest", "--data", live)
	if err != nil {
		t.Fatal(err)
	}
	want := digestLine(t, out)
	if !strings.HasSuffix(want, " applied_seq="+itoa(last)) || !strings.Contains(out, "counter") {
		t.Fatalf("digest of the live projection: %s", out)
	}

	rebuilt := filepath.Join(t.TempDir(), "rebuilt")
	out, err = projectorCmd(t, "rebuild", "--nats-url", url, "--data", rebuilt, "--to-seq", itoa(last/2), "--progress", "lines")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "from sequence 1") || digestLine(t, out) == want {
		t.Fatalf("half rebuild: %s", out)
	}
	ckpt := filepath.Join(t.TempDir(), "ckpt")
	if out, err = projectorCmd(t, "checkpoint", "--data", rebuilt, "--out", ckpt); err != nil || !strings.Contains(out, "at applied_seq "+itoa(last/2)) {
		t.Fatalf("checkpoint: %v %s", err, out)
	}
	out, err = projectorCmd(t, "rebuild", "--nats-url", url, "--data", rebuilt, "--progress", "off")
	if err != nil || !strings.Contains(out, "resumed at "+itoa(last/2+1)) || digestLine(t, out) != want {
		t.Fatalf("resumed rebuild: %v\n%s\nwant %s", err, out, want)
	}
	out, err = projectorCmd(t, "rebuild", "--nats-url", url, "--data", filepath.Join(t.TempDir(), "from-ckpt"), "--from-checkpoint", ckpt, "--progress", "off")
	if err != nil || !strings.Contains(out, "from checkpoint at "+itoa(last/2)) || digestLine(t, out) != want {
		t.Fatalf("rebuild from checkpoint: %v\n%s\nwant %s", err, out, want)
	}
	if out, err = projectorCmd(t, "digest", "--data", rebuilt, "--format", "json"); err != nil || !strings.Contains(out, `"applied_seq": `+itoa(last)) {
		t.Fatalf("json digest: %v %s", err, out)
	}
	if _, err := projectorCmd(t, "rebuild", "--nats-url", url); err == nil {
		t.Fatal("rebuild without --data: no error")
	}
	if _, err := os.Stat(filepath.Join(ckpt, "LEDGER-CHECKPOINT.json")); err != nil {
		t.Fatal(err)
	}
}

func itoa(n uint64) string { return strconv.FormatUint(n, 10) }
