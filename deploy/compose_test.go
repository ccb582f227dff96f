package deploy_test

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/ledgerworks/ledger/api"
	"github.com/ledgerworks/ledger/client"
	"github.com/ledgerworks/ledger/events"
)

// Bounds of the compose test's phases. With a warm Go build cache the
// images build in seconds and the cluster is healthy in well under a
// minute.
const (
	buildTimeout   = 3 * time.Minute
	upTimeout      = 150 * time.Second
	failoverBound  = 30 * time.Second
	cleanupTimeout = 90 * time.Second
)

// services of docker-compose.yml; every one has a health check.
var services = []string{"nats-a", "nats-b", "nats-c", "ledger-a", "ledger-b", "projector-1", "projector-2"}

// TestCompose builds the images, starts docker-compose.yml as a project of
// its own, uses the ledger through the Go client on the published port,
// kills the NATS node that leads the stream and a projector, and checks
// that the totals stay exact. Everything it created is removed at the end.
func TestCompose(t *testing.T) {
	if testing.Short() {
		t.Skip("compose test: skipped with -short (it builds images and runs 7 containers)")
	}
	requireDocker(t)
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	project := fmt.Sprintf("ledgertest%d%06d", os.Getpid(), rand.IntN(1_000_000))
	c := &compose{t: t, root: root, project: project, image: "ledger-local:test-" + project, port: freePort(t)}
	t.Logf("compose project %s, image %s, nats-a on 127.0.0.1:%d", c.project, c.image, c.port)

	start := time.Now()
	t.Cleanup(c.removeImage)
	// The binaries go to a directory of the test, not deploy/bin: a test
	// running beside a user's build does not overwrite it.
	c.bin = t.TempDir()
	if _, stderr, err := c.run2(buildTimeout, "deploy/build-images.sh"); err != nil {
		t.Fatalf("build the images: %v", err)
	} else {
		t.Logf("images built in %s (%s)", time.Since(start).Round(100*time.Millisecond), lastLine(stderr))
	}

	t.Cleanup(c.down)
	start = time.Now()
	c.up()
	t.Logf("every service healthy %s after docker-compose up", time.Since(start).Round(100*time.Millisecond))

	urls := []string{fmt.Sprintf("nats://127.0.0.1:%d", c.port)}
	for _, s := range []string{"nats-b", "nats-c"} {
		out, err := c.compose(30*time.Second, "port", s, "4222")
		if err != nil {
			t.Fatal(err)
		}
		urls = append(urls, "nats://"+strings.TrimSpace(out))
	}
	nc, err := nats.Connect(strings.Join(urls, ","), nats.Name("compose test"), nats.Timeout(2*time.Second),
		nats.MaxReconnects(-1), nats.ReconnectWait(100*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	info := streamInfo(ctx, t, js)
	if info.Config.Replicas != 3 || info.Cluster == nil || len(info.Cluster.Replicas) != 2 {
		t.Errorf("stream %s: %d replicas configured, cluster %+v; want 3 (a leader and 2 replicas)", events.StreamName, info.Config.Replicas, info.Cluster)
	}
	leader := info.Cluster.Leader
	t.Logf("stream %s: R%d, leader %s", events.StreamName, info.Config.Replicas, leader)

	cl, err := client.New(nc, client.WithTimeout(2*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	// acme is in partition 15 (owned by ledger-b), initech in 1 (ledger-a).
	tenants := []string{"acme", "initech"}
	dims := events.Dimensions{"user": "ana", "model": "gpt-4o"}
	each := events.Amounts{InputTokens: 100, OutputTokens: 50, Requests: 1}
	quota := events.Quota{ID: "daily-tokens", Limits: []events.Limit{{
		Metric: events.MetricTokens, Max: 1_000_000, Window: events.Window{Kind: events.Calendar, Unit: events.UnitDay},
	}}}
	lastSeq := map[string]uint64{}
	for _, tenant := range tenants {
		if _, err := cl.SetQuota(ctx, tenant, quota); err != nil {
			t.Fatalf("%s: set quota: %v", tenant, err)
		}
		var evs []events.Event
		for i := 0; i < 10; i++ {
			evs = append(evs, events.New(fmt.Sprintf("%s-before-%d", tenant, i), tenant, time.Now(), dims, &events.UsageRecorded{Amounts: each}))
		}
		rec, err := cl.RecordUsage(ctx, evs...)
		if err != nil {
			t.Fatalf("%s: record usage: %v", tenant, err)
		}
		lastSeq[tenant] = rec.Seq
		checkUsed(ctx, t, cl, tenant, dims, rec.Seq, 10*each.TotalTokens())
	}

	// What the README's quickstart does with the stock NATS CLI: JSON on the
	// tenant's subject, routed by the servers' partition mapping.
	subject := api.TenantSubject(api.SubjectCheck, "acme")
	body := fmt.Sprintf(`{"dims":{"user":"ana","model":"gpt-4o"},"request":{"tokens":9000},"after_seq":%d}`, lastSeq["acme"])
	var raw api.CheckReply
	err = retry(ctx, failoverBound, func(ctx context.Context) error {
		m, err := nc.RequestWithContext(ctx, subject, []byte(body))
		if err != nil {
			return err
		}
		if e := m.Header.Get("Nats-Service-Error"); e != "" {
			return fmt.Errorf("%s: %s", e, m.Data)
		}
		return json.Unmarshal(m.Data, &raw)
	})
	if err != nil {
		t.Fatalf("nats req %s: %v", subject, err)
	}
	if !raw.Allowed || len(raw.Limits) != 1 || raw.Limits[0].Used != 10*each.TotalTokens() || raw.Limits[0].Requested != 9000 {
		t.Errorf("nats req %s %s: allowed %v, limits %+v; want allowed, %d used, 9000 requested", subject, body, raw.Allowed, raw.Limits, 10*each.TotalTokens())
	}

	// Kill the NATS node that leads the stream, and a projector.
	if !strings.HasPrefix(leader, "nats-") {
		t.Fatalf("stream leader %q is not one of the compose services", leader)
	}
	killed := time.Now()
	if out, err := c.run(30*time.Second, "docker", "kill", c.container(leader), c.container("projector-1")); err != nil {
		t.Fatalf("docker kill: %v %s", err, out)
	}
	t.Logf("killed %s (the stream's leader) and projector-1", leader)

	var gap time.Duration
	for i := 0; i < 20; i++ {
		for _, tenant := range tenants {
			ev := events.New(fmt.Sprintf("%s-after-%d", tenant, i), tenant, time.Now(), dims, &events.UsageRecorded{Amounts: each})
			var rec *api.RecordUsageReply
			err := retry(ctx, failoverBound, func(ctx context.Context) (err error) {
				rec, err = cl.RecordUsage(ctx, ev)
				return err
			})
			if err != nil {
				t.Fatalf("%s: record usage after the kill (retried %s with the same event id): %v", tenant, failoverBound, err)
			}
			if gap == 0 {
				gap = time.Since(killed)
				t.Logf("first usage recorded %s after the kill", gap.Round(10*time.Millisecond))
			}
			lastSeq[tenant] = max(lastSeq[tenant], rec.Seq)
		}
	}
	for _, tenant := range tenants {
		want := 30 * each.TotalTokens()
		checkUsed(ctx, t, cl, tenant, dims, lastSeq[tenant], want)
		var u *api.UsageReply
		err := retry(ctx, failoverBound, func(ctx context.Context) (err error) {
			u, err = cl.Usage(ctx, tenant, lastSeq[tenant])
			return err
		})
		if err != nil {
			t.Fatalf("%s: usage: %v", tenant, err)
		}
		wantTotals := map[events.Metric]int64{
			events.MetricInputTokens: 30 * each.InputTokens, events.MetricOutputTokens: 30 * each.OutputTokens,
			events.MetricRequests: 30 * each.Requests,
		}
		for m, w := range wantTotals {
			if got := u.Totals[m]; got != w {
				t.Errorf("%s: total %s %d, want %d (totals %v)", tenant, m, got, w, u.Totals)
			}
		}
	}

	info = streamInfo(ctx, t, js)
	t.Logf("stream %s after the kill: leader %s, last seq %d", events.StreamName, info.Cluster.Leader, info.State.LastSeq)
	if info.Cluster.Leader == leader {
		t.Errorf("the killed node %s still leads the stream", leader)
	}
	// The ledgers and the other projector stay up and healthy.
	c.waitHealthy(failoverBound, "ledger-a", "ledger-b", "projector-2")
	if ss, err := c.states(); err == nil {
		for _, s := range []string{leader, "projector-1"} {
			t.Logf("%s after docker kill: %s, %s (docker does not restart a killed container)", s, ss[s].State.Status, ss[s].health())
		}
	}
}

// compose runs docker-compose on the repository's docker-compose.yml as one
// project of the test, with its own image tag and host port.
type compose struct {
	t       *testing.T
	root    string
	project string
	image   string
	port    int
	bin     string // LEDGER_BIN_DIR of build-images.sh
	// reported: the services' states are in the log already.
	reported bool
}

func (c *compose) env() []string {
	return append(os.Environ(),
		"LEDGER_IMAGE="+c.image,
		"LEDGER_NATS_PORT="+strconv.Itoa(c.port),
		"COMPOSE_PROJECT_NAME="+c.project,
		"LEDGER_BIN_DIR="+c.bin,
	)
}

// run runs a command in the repository root within d and returns its
// standard output; an error holds its standard error too.
func (c *compose) run(d time.Duration, name string, args ...string) (string, error) {
	out, _, err := c.run2(d, name, args...)
	return out, err
}

// run2 is run, also returning the standard error.
func (c *compose) run2(d time.Duration, name string, args ...string) (stdout, stderr string, err error) {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = c.root
	cmd.Env = c.env()
	cmd.WaitDelay = 5 * time.Second
	var o, e strings.Builder
	cmd.Stdout, cmd.Stderr = &o, &e
	err = cmd.Run()
	if ctx.Err() != nil {
		err = fmt.Errorf("%s %s: not done within %s\n%s%s", name, strings.Join(args, " "), d, o.String(), e.String())
	} else if err != nil {
		err = fmt.Errorf("%s %s: %w\n%s%s", name, strings.Join(args, " "), err, o.String(), e.String())
	}
	return o.String(), e.String(), err
}

func (c *compose) compose(d time.Duration, args ...string) (string, error) {
	return c.run(d, "docker-compose", append([]string{"-p", c.project, "-f", filepath.Join(c.root, "docker-compose.yml")}, args...)...)
}

// container is the id of a service's container.
func (c *compose) container(service string) string {
	c.t.Helper()
	out, err := c.compose(30*time.Second, "ps", "-q", service)
	if err != nil || strings.TrimSpace(out) == "" {
		c.t.Fatalf("container of %s: %v %q", service, err, out)
	}
	return strings.TrimSpace(out)
}

// state is what docker inspect says about a service's container.
type state struct {
	Config struct {
		Labels map[string]string
	}
	RestartCount int
	State        struct {
		Status   string
		ExitCode int
		Health   *struct {
			Status string
			Log    []struct {
				ExitCode int
				Output   string
			}
		}
	}
}

func (s state) health() string {
	if s.State.Health == nil {
		return "no health check"
	}
	return s.State.Health.Status
}

// lastCheck is the output of the latest health check.
func (s state) lastCheck() string {
	if s.State.Health == nil || len(s.State.Health.Log) == 0 {
		return ""
	}
	return strings.TrimSpace(s.State.Health.Log[len(s.State.Health.Log)-1].Output)
}

// states maps the project's services to their containers' states.
func (c *compose) states() (map[string]state, error) {
	out, err := c.compose(30*time.Second, "ps", "-q")
	if err != nil {
		return nil, err
	}
	ids := strings.Fields(out)
	res := map[string]state{}
	if len(ids) == 0 {
		return res, nil
	}
	out, err = c.run(30*time.Second, "docker", append([]string{"inspect"}, ids...)...)
	if err != nil {
		return nil, err
	}
	var ss []state
	if err := json.Unmarshal([]byte(out), &ss); err != nil {
		return nil, fmt.Errorf("docker inspect: %w", err)
	}
	for _, s := range ss {
		res[s.Config.Labels["com.docker.compose.service"]] = s
	}
	return res, nil
}

// up starts the project and waits until every service is healthy. It fails
// as soon as docker-compose up fails or a container keeps crashing, with
// what each service says and the logs of those not healthy.
func (c *compose) up() {
	c.t.Helper()
	done := make(chan error, 1)
	go func() {
		_, err := c.compose(upTimeout, "up", "-d", "--no-build")
		done <- err
	}()
	deadline := time.Now().Add(upTimeout)
	var upErr error
	upDone := false
	for {
		select {
		case upErr = <-done:
			upDone = true
		case <-time.After(time.Second):
		}
		ss, err := c.states()
		if err != nil {
			c.t.Fatal(err)
		}
		healthy := 0
		for _, s := range services {
			if st, ok := ss[s]; ok && st.health() == "healthy" {
				healthy++
			}
		}
		switch {
		case healthy == len(services) && upDone && upErr == nil:
			return
		case upDone && upErr != nil:
			c.t.Fatalf("docker-compose up: %v\n%s", upErr, c.report(ss))
		case time.Now().After(deadline):
			c.t.Fatalf("not every service healthy within %s:\n%s", upTimeout, c.report(ss))
		}
		for s, st := range ss {
			if st.RestartCount >= 3 {
				c.t.Fatalf("%s keeps crashing (restarted %d times, last exit %d):\n%s", s, st.RestartCount, st.State.ExitCode, c.report(ss))
			}
		}
	}
}

// waitHealthy waits until the services are healthy.
func (c *compose) waitHealthy(within time.Duration, services ...string) {
	c.t.Helper()
	deadline := time.Now().Add(within)
	for {
		ss, err := c.states()
		if err != nil {
			c.t.Fatal(err)
		}
		healthy := 0
		for _, s := range services {
			if ss[s].health() == "healthy" {
				healthy++
			}
		}
		if healthy == len(services) {
			return
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("%v not all healthy within %s:\n%s", services, within, c.report(ss))
		}
		time.Sleep(time.Second) // polling interval of a condition with a deadline
	}
}

// report says what each service's container is doing, with the last lines
// of the logs of those not healthy or restarted.
func (c *compose) report(ss map[string]state) string {
	c.reported = true
	var b strings.Builder
	for _, s := range services {
		st, ok := ss[s]
		if !ok {
			fmt.Fprintf(&b, "  %-12s not created\n", s)
			continue
		}
		fmt.Fprintf(&b, "  %-12s %s, %s, restarted %d, last exit %d; last check: %s\n",
			s, st.State.Status, st.health(), st.RestartCount, st.State.ExitCode, st.lastCheck())
	}
	for _, s := range services {
		st, ok := ss[s]
		if !ok || st.health() == "healthy" && st.RestartCount == 0 {
			continue
		}
		out, _ := c.compose(30*time.Second, "logs", "--no-color", "--tail", "25", s)
		fmt.Fprintf(&b, "--- logs of %s:\n%s", s, out)
	}
	return b.String()
}

// down removes the project's containers, network and volumes, then checks
// that nothing of it is left.
func (c *compose) down() {
	if c.t.Failed() && !c.reported {
		if ss, err := c.states(); err == nil {
			c.t.Logf("services at the end:\n%s", c.report(ss))
		}
	}
	if out, err := c.compose(cleanupTimeout, "down", "-v", "--remove-orphans", "-t", "5"); err != nil {
		c.t.Errorf("docker-compose down: %v %s", err, out)
	}
	label := "label=com.docker.compose.project=" + c.project
	for _, what := range [][]string{
		{"ps", "-a", "-q", "--filter", label},
		{"network", "ls", "-q", "--filter", label},
		{"volume", "ls", "-q", "--filter", label},
	} {
		out, err := c.run(30*time.Second, "docker", what...)
		if err != nil || strings.TrimSpace(out) != "" {
			c.t.Errorf("left behind by docker-compose down (docker %s): %v %s", strings.Join(what, " "), err, out)
		}
	}
}

// removeImage removes the image tag of the test (the image itself stays
// when another tag, such as ledger-local:dev, names it).
func (c *compose) removeImage() {
	out, err := c.run(cleanupTimeout, "docker", "image", "ls", "-q", c.image)
	if err != nil || strings.TrimSpace(out) == "" {
		return
	}
	if out, err := c.run(cleanupTimeout, "docker", "rmi", c.image); err != nil {
		c.t.Errorf("remove image %s: %v %s", c.image, err, out)
	}
}

// requireDocker skips the test when Docker or docker-compose is missing, and
// fails it with CI=true, where they must be there.
func requireDocker(t *testing.T) {
	t.Helper()
	var missing []string
	for _, tool := range []string{"docker", "docker-compose", "go"} {
		if _, err := exec.LookPath(tool); err != nil {
			missing = append(missing, tool+" is not on PATH")
		}
	}
	if len(missing) == 0 {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		if out, err := exec.CommandContext(ctx, "docker", "version", "--format", "{{.Server.Version}}").CombinedOutput(); err != nil {
			missing = append(missing, fmt.Sprintf("the Docker daemon does not answer (docker version: %v: %s)", err, strings.TrimSpace(string(out))))
		}
	}
	if len(missing) == 0 {
		return
	}
	msg := "compose test needs Docker Engine and Compose v1: " + strings.Join(missing, "; ")
	if os.Getenv("CI") == "true" {
		t.Fatal(msg + " (CI=true: Docker is required in CI)")
	}
	t.Skip(msg)
}

// freePort is a TCP port free on 127.0.0.1 now.
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func streamInfo(ctx context.Context, t *testing.T, js jetstream.JetStream) *jetstream.StreamInfo {
	t.Helper()
	var info *jetstream.StreamInfo
	err := retry(ctx, failoverBound, func(ctx context.Context) error {
		s, err := js.Stream(ctx, events.StreamName)
		if err != nil {
			return err
		}
		info, err = s.Info(ctx)
		if err == nil && (info.Cluster == nil || info.Cluster.Leader == "") {
			err = fmt.Errorf("no leader")
		}
		return err
	})
	if err != nil {
		t.Fatalf("stream %s: %v", events.StreamName, err)
	}
	return info
}

// checkUsed checks that the tenant's daily tokens limit has used tokens
// used, as of the stream sequence seq.
func checkUsed(ctx context.Context, t *testing.T, cl *client.Client, tenant string, dims events.Dimensions, seq uint64, used int64) {
	t.Helper()
	var r *api.CheckReply
	err := retry(ctx, failoverBound, func(ctx context.Context) (err error) {
		r, err = cl.Check(ctx, api.CheckRequest{Tenant: tenant, Dims: dims, AfterSeq: seq})
		return err
	})
	if err != nil {
		t.Fatalf("%s: check: %v", tenant, err)
	}
	if !r.Allowed || len(r.Limits) != 1 || r.Limits[0].Used != used || r.AppliedSeq < seq {
		t.Errorf("%s: check after seq %d: allowed %v, applied seq %d, limits %+v; want allowed with %d tokens used", tenant, seq, r.Allowed, r.AppliedSeq, r.Limits, used)
	}
}

// retry calls f until it succeeds or within has passed, and returns its
// last error. Every ledger write of the test is idempotent (event ids).
func retry(ctx context.Context, within time.Duration, f func(ctx context.Context) error) error {
	ctx, cancel := context.WithTimeout(ctx, within)
	defer cancel()
	var errs []string
	for {
		err := f(ctx)
		if err == nil {
			return nil
		}
		if len(errs) == 0 || errs[len(errs)-1] != err.Error() {
			errs = append(errs, err.Error())
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s (errors on the way: %s)", err, strings.Join(uniq(errs), "; "))
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func uniq(ss []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, s := range ss {
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	sort.Strings(out)
	return out
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}
