package ledgertest

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/ledgerworks/ledger/api"
)

// Bounds of the waits the cluster helpers do. JetStream elects a new raft
// leader 4 to 9 s after losing the old one (the server's election timeout,
// not settable from outside its package), so waits that include an
// election leave room for two.
const (
	clusterReadyWithin = 30 * time.Second // every node up, routed, a meta leader with every peer, all current
	nodeReadyWithin    = 10 * time.Second // one server's listeners open
	nodeCurrentWithin  = 30 * time.Second // a restarted or healed node healthy again
	routesWithin       = 10 * time.Second // routes cut or re-formed after Isolate, Heal
	proxyHandshake     = 5 * time.Second  // a route's first line through a proxy
	proxyDial          = 2 * time.Second
)

// Cluster is n nats-server instances with JetStream on 127.0.0.1, each with
// its own store directory under t.TempDir(), routed to each other, every
// port picked free by the OS. Node i is named "n<i>" in cluster "ledgertest".
// Every server carries api.PartitionMappings() on its global account, so a
// request to ledger.v1.<op>.<tenant> reaches ledger.v1.p.<partition>.<op>.<tenant>
// whichever node the client is connected to.
//
// Routes do not go straight from server to server: every node's route
// listener sits behind a TCP proxy owned by the Cluster, the node advertises
// that proxy as its cluster address, and every node's configured routes
// are the other nodes' proxies. So every route connection, solicited by
// either side, pooled or not, passes through exactly one proxy, and since
// every peer is a configured route no server ever dials a gossiped address
// around the proxies. A proxy reads the first line a dialing server sends,
// its route CONNECT, to learn which node dials (by server ID), and then
// relays bytes unchanged. That is what lets Isolate and Kill cut a node's
// routes while its client connections stay up.
//
// Client connections go straight to the servers. Tests use the global
// account (server.DEFAULT_GLOBAL_ACCOUNT, "$G"): no users, no auth.
//
// The methods are meant to be called from the test's goroutine.
type Cluster struct {
	t     testing.TB
	name  string
	nodes []*clusterNode
	wg    sync.WaitGroup // proxy accept loops and relays
	// configure adjusts each node's options (StartClusterWith).
	configure func(*server.Options) error

	mu       sync.Mutex
	closed   bool           // set once at cleanup
	ids      map[string]int // server ID of each running node's current instance -> index
	isolated []bool
	down     []bool
	links    map[*routeLink]struct{}
}

type clusterNode struct {
	name  string
	dir   string
	proxy net.Listener // the address the other nodes dial, and this node advertises
	// Ports chosen by the OS at the first start and kept across restarts.
	clientPort, clusterPort int
	// Route connections to each peer once formed: the pool (3 by default)
	// plus one per pinned account ($SYS by default). Accounts' subjects'
	// interest travels on the pool connection its account hashes to, so a
	// cluster is not formed before every one is up.
	routesPerPeer int
	srv           *server.Server // under Cluster.mu
}

// routeLink is one route TCP connection relayed by a proxy: in from the
// dialing node, out to the node the proxy stands for.
type routeLink struct {
	from, to int
	in, out  net.Conn
}

func (l *routeLink) close() {
	l.in.Close()
	l.out.Close()
}

// StartCluster starts an n-node cluster and waits (bounded) until every
// server accepts connections, is routed to every other, JetStream has a
// meta leader that sees all n peers, and every node is current. t.Cleanup
// shuts every server and proxy down and waits for them.
func StartCluster(t testing.TB, n int) *Cluster {
	t.Helper()
	return StartClusterWith(t, n, nil)
}

// StartClusterWith is StartCluster with configure applied to each node's
// options at every start: the users of an authorization block, say.
func StartClusterWith(t testing.TB, n int, configure func(*server.Options) error) *Cluster {
	t.Helper()
	if n < 1 {
		t.Fatalf("StartCluster: n = %d, want at least 1", n)
	}
	c := &Cluster{
		t:         t,
		name:      "ledgertest",
		nodes:     make([]*clusterNode, n),
		ids:       make(map[string]int),
		isolated:  make([]bool, n),
		down:      make([]bool, n),
		links:     make(map[*routeLink]struct{}),
		configure: configure,
	}
	// Listen on every proxy before any server starts: a server may dial a
	// peer's proxy before the peer is up; the dial waits in the listen
	// backlog until the accept loops start below.
	for i := range c.nodes {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			c.closeProxies()
			t.Fatalf("route proxy for node %d: %v", i, err)
		}
		c.nodes[i] = &clusterNode{name: "n" + strconv.Itoa(i), dir: t.TempDir(), proxy: ln}
	}
	t.Cleanup(c.shutdown)
	for i := range c.nodes {
		c.start(i)
	}
	for i := range c.nodes {
		c.wg.Add(1)
		go c.accept(i)
	}
	c.waitReady()
	return c
}

// N is the number of nodes.
func (c *Cluster) N() int { return len(c.nodes) }

// URLs is every node's client URL, comma separated, as nats.Connect takes
// them. It includes stopped nodes: they come back on the same port.
func (c *Cluster) URLs() string {
	urls := make([]string, len(c.nodes))
	for i := range c.nodes {
		urls[i] = c.URL(i)
	}
	return strings.Join(urls, ",")
}

// URL is node i's client URL.
func (c *Cluster) URL(i int) string {
	return "nats://" + net.JoinHostPort("127.0.0.1", strconv.Itoa(c.nodes[i].clientPort))
}

// Server is node i's current server instance (a stopped one after Kill).
func (c *Cluster) Server(i int) *server.Server {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.nodes[i].srv
}

// Kill stops node i as abruptly as an in-process server allows. First its
// route connections are cut at the proxies, so its peers see the routes
// drop with no goodbye: the raft leader step-downs that Shutdown sends
// reach nobody, and the remaining nodes have to notice the missing
// heartbeats and elect, as after a crash. Then the server is shut down
// (Shutdown, no lame duck mode) and waited for.
//
// What it is not: a crash of the process. Shutdown still closes its clients'
// connections with a clean TCP close and flushes and closes its stores
// properly, so it does not test recovery from a torn write; that needs a
// separate process killed with SIGKILL.
func (c *Cluster) Kill(i int) {
	c.t.Helper()
	c.mu.Lock()
	if c.down[i] {
		c.mu.Unlock()
		c.t.Fatalf("Kill(%d): node is not running", i)
	}
	c.down[i] = true
	s := c.nodes[i].srv
	delete(c.ids, s.ID())
	cut := c.linksOfLocked(i)
	c.mu.Unlock()
	for _, l := range cut {
		l.close()
	}
	s.Shutdown()
	s.WaitForShutdown()
}

// Restart starts node i again with the same name, store directory and
// ports (Kill first if it is running) and waits until it accepts
// connections, its routes are formed and it is healthy: the server's
// Healthz says ok, which means JetStream is current with the meta leader
// and with every stream and consumer it holds a replica of. A node that
// is isolated stays isolated, and cannot become healthy: Heal it first.
func (c *Cluster) Restart(i int) {
	c.t.Helper()
	c.mu.Lock()
	running := !c.down[i]
	c.mu.Unlock()
	if running {
		c.Kill(i)
	}
	c.start(i)
	c.waitRoutes("routes of restarted node "+strconv.Itoa(i), nil)
	c.waitHealthy(i, nodeCurrentWithin)
}

// StreamLeader is the index of the node leading stream in account (for
// tests, server.DEFAULT_GLOBAL_ACCOUNT), -1 if none. Only running nodes
// that are not isolated count: an isolated former leader may believe it
// still leads for a while (until it notices it lost quorum), but it cannot
// commit anything.
func (c *Cluster) StreamLeader(account, stream string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	for i, n := range c.nodes {
		if c.down[i] || c.isolated[i] || n.srv == nil {
			continue
		}
		if n.srv.JetStreamIsStreamLeader(account, stream) {
			return i
		}
	}
	return -1
}

// WaitStreamLeader waits up to within for stream (in the global account)
// to have a leader among the running, non-isolated nodes and returns its
// index.
func (c *Cluster) WaitStreamLeader(t testing.TB, stream string, within time.Duration) int {
	t.Helper()
	leader := -1
	Eventually(t, within, "a leader of stream "+stream, func() bool {
		leader = c.StreamLeader(server.DEFAULT_GLOBAL_ACCOUNT, stream)
		return leader >= 0
	})
	return leader
}

// StreamState is node i's own copy of stream's state (global account): what
// its store holds, whether it leads or follows, as the server's Jsz reports
// it, not asking the leader.
func (c *Cluster) StreamState(i int, stream string) (server.StreamState, error) {
	s := c.Server(i)
	if s == nil || !s.Running() {
		return server.StreamState{}, fmt.Errorf("node %d is not running", i)
	}
	info, err := s.Jsz(&server.JSzOptions{Account: server.DEFAULT_GLOBAL_ACCOUNT, Streams: true})
	if err != nil {
		return server.StreamState{}, err
	}
	for _, ad := range info.AccountDetails {
		for _, sd := range ad.Streams {
			if sd.Name == stream {
				return sd.State, nil
			}
		}
	}
	return server.StreamState{}, fmt.Errorf("node %d holds no stream %q", i, stream)
}

// Isolate partitions node i from the others: its route connections are
// cut at the proxies (the servers see them reset) and every new one it
// or a peer dials is closed on arrival until Heal. The node keeps running
// and keeps its client connections, so its clients talk to a node in a
// minority. Isolate returns once no server has a route to or from node i
// any more. Isolating a second node of three leaves no majority anywhere.
//
// Limit: the partition is a reset, not silence. The servers learn at once
// that the routes are gone, where a real partition that drops packets is
// noticed only by missed pings. Raft does not care which: either way
// elections wait for the election timeout (4 to 9 s) to pass.
func (c *Cluster) Isolate(i int) {
	c.t.Helper()
	c.mu.Lock()
	c.isolated[i] = true
	cut := c.linksOfLocked(i)
	c.mu.Unlock()
	for _, l := range cut {
		l.close()
	}
	c.waitRoutes("node "+strconv.Itoa(i)+" cut off", func(from, to int) bool {
		return from != i && to != i
	})
}

// Heal lets node i's routes through again and waits until they are back
// (the servers re-dial within about a second) and node i is healthy again,
// as Restart does: caught up with the meta leader and its streams.
func (c *Cluster) Heal(i int) {
	c.t.Helper()
	c.mu.Lock()
	c.isolated[i] = false
	down := c.down[i]
	c.mu.Unlock()
	c.waitRoutes("routes of node "+strconv.Itoa(i)+" restored", nil)
	if !down {
		c.waitHealthy(i, nodeCurrentWithin)
	}
}

// start creates and starts node i's server and waits until it accepts
// connections.
func (c *Cluster) start(i int) {
	c.t.Helper()
	n := c.nodes[i]
	opts, err := c.options(i)
	if err != nil {
		c.t.Fatalf("options of node %d: %v", i, err)
	}
	s, err := server.NewServer(opts)
	if err != nil {
		c.t.Fatalf("node %d: %v", i, err)
	}
	// NewServer filled in the defaults.
	n.routesPerPeer = max(opts.Cluster.PoolSize, 1) + len(opts.Cluster.PinnedAccounts)
	// Known before the server dials anyone, so its proxies know it.
	c.mu.Lock()
	c.ids[s.ID()] = i
	c.nodes[i].srv = s
	c.down[i] = false
	c.mu.Unlock()
	go s.Start()
	if !s.ReadyForConnections(nodeReadyWithin) {
		c.t.Fatalf("node %d not ready for connections within %s", i, nodeReadyWithin)
	}
	c.mu.Lock()
	n.clientPort = s.Addr().(*net.TCPAddr).Port
	n.clusterPort = s.ClusterAddr().Port
	c.mu.Unlock()
}

// options are node i's server options, a new value every start (the
// server keeps and changes what it is given).
func (c *Cluster) options(i int) (*server.Options, error) {
	n := c.nodes[i]
	// The global account with the partition mappings, as a config file's
	// top-level "mappings" block would make it. A new account each start:
	// the server takes it over.
	global := server.NewAccount(server.DEFAULT_GLOBAL_ACCOUNT)
	for src, dst := range api.PartitionMappings() {
		if err := global.AddMapping(src, dst); err != nil {
			return nil, fmt.Errorf("mapping %s -> %s: %w", src, dst, err)
		}
	}
	var routes []*url.URL
	for j, peer := range c.nodes {
		if j != i {
			routes = append(routes, &url.URL{Scheme: "nats-route", Host: peer.proxy.Addr().String()})
		}
	}
	port, clusterPort := server.RANDOM_PORT, server.RANDOM_PORT
	if n.clientPort != 0 {
		port, clusterPort = n.clientPort, n.clusterPort
	}
	opts := &server.Options{
		ServerName:         n.name,
		Host:               "127.0.0.1",
		Port:               port,
		NoLog:              true,
		NoSigs:             true,
		JetStream:          true,
		StoreDir:           n.dir,
		JetStreamMaxMemory: 256 << 20,
		JetStreamMaxStore:  1 << 30,
		Accounts:           []*server.Account{global},
		Cluster: server.ClusterOpts{
			Name:      c.name,
			Host:      "127.0.0.1",
			Port:      clusterPort,
			Advertise: n.proxy.Addr().String(),
		},
		Routes: routes,
	}
	if c.configure != nil {
		if err := c.configure(opts); err != nil {
			return nil, err
		}
	}
	return opts, nil
}

// waitReady waits until the whole cluster is formed and JetStream is ready.
func (c *Cluster) waitReady() {
	c.t.Helper()
	c.waitRoutes("every node routed to every other", nil)
	Eventually(c.t, clusterReadyWithin, "a JetStream meta leader with every peer, every node current", func() bool {
		leaders := 0
		for i := range c.nodes {
			s := c.Server(i)
			if !s.JetStreamIsCurrent() {
				return false
			}
			if s.JetStreamIsLeader() {
				if len(s.JetStreamClusterPeers()) != len(c.nodes) {
					return false
				}
				leaders++
			}
		}
		return leaders == 1
	})
	for i := range c.nodes {
		c.waitHealthy(i, clusterReadyWithin)
	}
}

// waitHealthy waits until node i's Healthz reports ok.
func (c *Cluster) waitHealthy(i int, within time.Duration) {
	c.t.Helper()
	s := c.Server(i)
	var last string
	deadline := time.Now().Add(within)
	for {
		h := s.Healthz(nil)
		if h.Status == "ok" && h.Error == "" {
			return
		}
		last = h.Error
		if time.Now().After(deadline) {
			c.t.Fatalf("node %d not healthy within %s: %s", i, within, last)
		}
		time.Sleep(20 * time.Millisecond) // polling interval of a condition with a deadline
	}
}

// waitRoutes waits until, between every two running nodes, all route
// connections exist (in both servers' Routez) when want(from, to) says
// they should and none when not; want nil means "whenever neither is
// isolated".
func (c *Cluster) waitRoutes(what string, want func(from, to int) bool) {
	c.t.Helper()
	Eventually(c.t, routesWithin, what, func() bool {
		c.mu.Lock()
		isolated := append([]bool(nil), c.isolated...)
		down := append([]bool(nil), c.down...)
		c.mu.Unlock()
		for i := range c.nodes {
			if down[i] {
				continue
			}
			rz, err := c.Server(i).Routez(&server.RoutezOptions{})
			if err != nil {
				return false
			}
			has := make(map[string]int)
			for _, r := range rz.Routes {
				has[r.RemoteName]++
			}
			for j, peer := range c.nodes {
				if j == i || down[j] {
					continue
				}
				should := !isolated[i] && !isolated[j]
				if want != nil {
					should = want(i, j)
				}
				if should && has[peer.name] != c.nodes[i].routesPerPeer || !should && has[peer.name] != 0 {
					return false
				}
			}
		}
		return true
	})
}

// linksOfLocked returns the relayed route connections to or from node i.
func (c *Cluster) linksOfLocked(i int) []*routeLink {
	var ls []*routeLink
	for l := range c.links {
		if l.from == i || l.to == i {
			ls = append(ls, l)
		}
	}
	return ls
}

// routableLocked says whether a route from node from to node to may pass.
func (c *Cluster) routableLocked(from, to int) bool {
	return !c.closed && from >= 0 && from != to &&
		!c.down[from] && !c.down[to] && !c.isolated[from] && !c.isolated[to]
}

// accept is the accept loop of the proxy in front of node to.
func (c *Cluster) accept(to int) {
	defer c.wg.Done()
	for {
		conn, err := c.nodes[to].proxy.Accept()
		if err != nil {
			return // the listener is closed at cleanup
		}
		c.wg.Add(1)
		go c.relay(to, conn)
	}
}

// relay passes one route connection to node to, if its dialer may reach it.
func (c *Cluster) relay(to int, in net.Conn) {
	defer c.wg.Done()
	// A route's dialer speaks first: CONNECT {"name":"<server id>",...}.
	_ = in.SetReadDeadline(time.Now().Add(proxyHandshake))
	br := bufio.NewReader(in)
	first, err := br.ReadSlice('\n')
	if err != nil {
		in.Close()
		return
	}
	_ = in.SetReadDeadline(time.Time{})
	c.mu.Lock()
	from := c.senderLocked(first)
	ok := c.routableLocked(from, to)
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(c.nodes[to].clusterPort))
	c.mu.Unlock()
	if !ok {
		in.Close()
		return
	}
	out, err := net.DialTimeout("tcp", addr, proxyDial)
	if err != nil {
		in.Close()
		return
	}
	l := &routeLink{from: from, to: to, in: in, out: out}
	c.mu.Lock()
	if !c.routableLocked(from, to) { // cut while dialing
		c.mu.Unlock()
		l.close()
		return
	}
	c.links[l] = struct{}{}
	c.mu.Unlock()
	defer func() {
		l.close()
		c.mu.Lock()
		delete(c.links, l)
		c.mu.Unlock()
	}()
	if _, err := out.Write(first); err != nil {
		return
	}
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		_, _ = io.Copy(in, out)
		l.close()
	}()
	_, _ = io.Copy(out, br)
}

// senderLocked is the node whose route CONNECT line this is, -1 if unknown.
func (c *Cluster) senderLocked(line []byte) int {
	rest, ok := bytes.CutPrefix(line, []byte("CONNECT "))
	if !ok {
		return -1
	}
	var connect struct {
		Name string `json:"name"`
	}
	if json.Unmarshal(bytes.TrimSpace(rest), &connect) != nil {
		return -1
	}
	i, ok := c.ids[connect.Name]
	if !ok {
		return -1
	}
	return i
}

// shutdown stops every proxy and server and waits for them.
func (c *Cluster) shutdown() {
	c.mu.Lock()
	c.closed = true
	var links []*routeLink
	for l := range c.links {
		links = append(links, l)
	}
	var running []*server.Server
	for i, n := range c.nodes {
		if n != nil && n.srv != nil && !c.down[i] {
			running = append(running, n.srv)
		}
	}
	c.mu.Unlock()
	c.closeProxies()
	for _, l := range links {
		l.close()
	}
	var wg sync.WaitGroup
	for _, s := range running {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.Shutdown()
			s.WaitForShutdown()
		}()
	}
	wg.Wait()
	c.wg.Wait()
}

func (c *Cluster) closeProxies() {
	for _, n := range c.nodes {
		if n != nil {
			n.proxy.Close()
		}
	}
}
