package ledger_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/ledgerworks/ledger/api"
	"github.com/ledgerworks/ledger/auth"
	"github.com/ledgerworks/ledger/client"
	"github.com/ledgerworks/ledger/internal/ledgertest"
	"github.com/ledgerworks/ledger/ledger"
)

// testCA is a certificate authority made for one test.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	file string // the CA certificate, PEM
}

// serial is a random certificate serial number.
func serial(t *testing.T) *big.Int {
	t.Helper()
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// newTestCA makes a CA and writes its certificate into dir as name.pem.
func newTestCA(t *testing.T, dir, name string) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial(t),
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	ca := &testCA{cert: cert, key: key, file: filepath.Join(dir, name+".pem")}
	writePEM(t, ca.file, "CERTIFICATE", der)
	return ca
}

// issue signs a leaf certificate for usage (server or client auth) and
// writes it and its key into dir as name.pem and name-key.pem.
func (ca *testCA) issue(t *testing.T, dir, name string, usage x509.ExtKeyUsage) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial(t),
		Subject:      pkix.Name{CommonName: name},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{usage},
	}
	if usage == x509.ExtKeyUsageServerAuth {
		tmpl.DNSNames = []string{"localhost"}
		tmpl.IPAddresses = []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, name+".pem"), filepath.Join(dir, name+"-key.pem")
	writePEM(t, certFile, "CERTIFICATE", der)
	writePEM(t, keyFile, "PRIVATE KEY", keyDER)
	return certFile, keyFile
}

func writePEM(t *testing.T, path, kind string, der []byte) {
	t.Helper()
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: kind, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}

// tlsFiles are one test's certificates: a CA, a server and a client
// certificate it signed, and a CA nobody trusts for this server.
type tlsFiles struct {
	ca, otherCA               string
	serverCert, serverKey     string
	clientCert, clientKey     string
	strangerCert, strangerKey string // a client certificate of the other CA
}

func makeTLSFiles(t *testing.T) tlsFiles {
	t.Helper()
	dir := t.TempDir()
	ca, other := newTestCA(t, dir, "ca"), newTestCA(t, dir, "other-ca")
	var f tlsFiles
	f.ca, f.otherCA = ca.file, other.file
	f.serverCert, f.serverKey = ca.issue(t, dir, "server", x509.ExtKeyUsageServerAuth)
	f.clientCert, f.clientKey = ca.issue(t, dir, "client", x509.ExtKeyUsageClientAuth)
	f.strangerCert, f.strangerKey = other.issue(t, dir, "stranger", x509.ExtKeyUsageClientAuth)
	return f
}

// startTLSLedger starts an embedded ledger with authentication and tls,
// and returns it, its credentials file and the seed files of acme's
// service, an admin and a user to revoke.
func startTLSLedger(t *testing.T, tls ledger.ServerTLS) (*ledger.Ledger, string, map[string]string) {
	t.Helper()
	dir := t.TempDir()
	path, seeds := credentials(t, dir, []auth.User{
		{Name: "acme-service", Role: auth.RoleService, Tenant: "acme"},
		{Name: "admin", Role: auth.RoleAdmin},
		{Name: "auditor", Role: auth.RoleAuditor},
	})
	l := ledgertest.StartLedger(t, ledger.Config{AuthFile: path, DataDir: filepath.Join(dir, "data"), TLS: tls})
	if !strings.HasPrefix(l.ClientURL(), "tls://") {
		t.Fatalf("a ledger with a certificate gives its URL as %s, want tls://", l.ClientURL())
	}
	return l, path, seeds
}

// tryConnect connects with c, failing fast: no reconnects, a 2 s timeout.
func tryConnect(t *testing.T, url string, c auth.Credentials) (*nats.Conn, error) {
	t.Helper()
	nc, err := c.Connect(url, nats.Timeout(2*time.Second), nats.NoReconnect())
	if err == nil {
		t.Cleanup(nc.Close)
	}
	return nc, err
}

// checkWorks makes a Check as acme's service on nc: the request crosses
// the TLS connection and the ledger's own in-process one.
func checkWorks(t *testing.T, nc *nats.Conn) {
	t.Helper()
	if !nc.TLSRequired() {
		t.Errorf("connected to %s without TLS", nc.ConnectedUrl())
	}
	if _, err := nc.TLSConnectionState(); err != nil {
		t.Errorf("no TLS state on the connection: %v", err)
	}
	c, err := client.New(nc, client.WithTimeout(2*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := c.Check(ctx, api.CheckRequest{Tenant: "acme"}); err != nil {
		t.Fatalf("check over TLS: %v", err)
	}
}

// plainURL is url with the nats:// scheme instead of tls://.
func plainURL(url string) string { return "nats://" + strings.TrimPrefix(url, "tls://") }

// TestTLSServerCertificate: with a certificate, clients connect over TLS,
// verifying it with the CA; without the CA, or trusting another CA, they
// cannot connect. The ledger's own in-process connection does not use
// TLS and keeps working.
func TestTLSServerCertificate(t *testing.T) {
	files := makeTLSFiles(t)
	l, _, seeds := startTLSLedger(t, ledger.ServerTLS{CertFile: files.serverCert, KeyFile: files.serverKey})
	url, seed := l.ClientURL(), seeds["acme-service"]

	t.Run("with the CA", func(t *testing.T) {
		nc, err := tryConnect(t, url, auth.Credentials{NKeyFile: seed, CAFile: files.ca})
		if err != nil {
			t.Fatalf("connect over TLS: %v", err)
		}
		checkWorks(t, nc)
	})
	t.Run("with the CA on a nats:// URL", func(t *testing.T) {
		// The server says TLS is required and the client upgrades.
		nc, err := tryConnect(t, plainURL(url), auth.Credentials{NKeyFile: seed, CAFile: files.ca})
		if err != nil {
			t.Fatalf("connect: %v", err)
		}
		checkWorks(t, nc)
	})
	t.Run("with a client certificate nobody asked for", func(t *testing.T) {
		nc, err := tryConnect(t, url, auth.Credentials{NKeyFile: seed, CAFile: files.ca, CertFile: files.clientCert, KeyFile: files.clientKey})
		if err != nil {
			t.Fatalf("connect: %v", err)
		}
		checkWorks(t, nc)
	})
	t.Run("without the CA", func(t *testing.T) {
		// On nats:// the server's INFO says TLS is required: the client
		// upgrades, and cannot verify the certificate with the system's CAs.
		for _, u := range []string{plainURL(url), url} {
			mustRefuse(t, u, auth.Credentials{NKeyFile: seed}, isTLSRefusal)
		}
	})
	t.Run("trusting another CA", func(t *testing.T) {
		mustRefuse(t, url, auth.Credentials{NKeyFile: seed, CAFile: files.otherCA}, isTLSRefusal)
	})
	t.Run("TLS does not replace the credentials", func(t *testing.T) {
		mustRefuse(t, url, auth.Credentials{CAFile: files.ca}, isAuthRefusal)
	})
	t.Run("in-process connection", func(t *testing.T) { ledgerAnswers(t, l, seeds, files) })
}

// TestTLSClientCertificates: with a CA for clients, a connection needs a
// client certificate it signed, on top of the user's key.
func TestTLSClientCertificates(t *testing.T) {
	files := makeTLSFiles(t)
	l, path, seeds := startTLSLedger(t, ledger.ServerTLS{CertFile: files.serverCert, KeyFile: files.serverKey, CAFile: files.ca})
	url, seed := l.ClientURL(), seeds["acme-service"]

	t.Run("with a client certificate", func(t *testing.T) {
		nc, err := tryConnect(t, url, auth.Credentials{NKeyFile: seed, CAFile: files.ca, CertFile: files.clientCert, KeyFile: files.clientKey})
		if err != nil {
			t.Fatalf("connect with a client certificate: %v", err)
		}
		checkWorks(t, nc)
	})
	t.Run("without a client certificate", func(t *testing.T) {
		mustRefuse(t, url, auth.Credentials{NKeyFile: seed, CAFile: files.ca}, isTLSRefusal)
	})
	t.Run("with another CA's client certificate", func(t *testing.T) {
		mustRefuse(t, url, auth.Credentials{NKeyFile: seed, CAFile: files.ca, CertFile: files.strangerCert, KeyFile: files.strangerKey}, isTLSRefusal)
	})
	t.Run("a certificate without the user's key", func(t *testing.T) {
		mustRefuse(t, url, auth.Credentials{CAFile: files.ca, CertFile: files.clientCert, KeyFile: files.clientKey}, isAuthRefusal)
	})
	t.Run("in-process connection", func(t *testing.T) { ledgerAnswers(t, l, seeds, files) })
	t.Run("revocation reloads a TLS server", func(t *testing.T) {
		// A reload gives the server its TLS options again with the users.
		creds := auth.Credentials{NKeyFile: seeds["auditor"], CAFile: files.ca, CertFile: files.clientCert, KeyFile: files.clientKey}
		if _, err := tryConnect(t, url, creds); err != nil {
			t.Fatalf("auditor before the revocation: %v", err)
		}
		f, err := auth.Load(path)
		if err != nil {
			t.Fatal(err)
		}
		if err := f.Revoke("auditor"); err != nil {
			t.Fatal(err)
		}
		if err := f.Save(path); err != nil {
			t.Fatal(err)
		}
		if err := l.ReloadAuth(); err != nil {
			t.Fatalf("reload: %v", err)
		}
		mustRefuse(t, url, creds, isAuthRefusal)
		ledgerAnswers(t, l, seeds, files)
		mustRefuse(t, url, auth.Credentials{NKeyFile: seeds["acme-service"], CAFile: files.ca}, isTLSRefusal)
	})
}

// ledgerAnswers: the ledger, whose own connection is in-process, answers
// the status of its cluster and an admin's request over TLS.
func ledgerAnswers(t *testing.T, l *ledger.Ledger, seeds map[string]string, files tlsFiles) {
	t.Helper()
	nc, err := tryConnect(t, l.ClientURL(), auth.Credentials{NKeyFile: seeds["admin"], CAFile: files.ca, CertFile: files.clientCert, KeyFile: files.clientKey})
	if err != nil {
		t.Fatalf("connect as admin: %v", err)
	}
	if _, err := nc.Request(api.SubjectClusterStatus, nil, 2*time.Second); err != nil {
		t.Errorf("cluster status: %v", err)
	}
	c, err := client.New(nc, client.WithTimeout(2*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := c.ListQuotas(ctx, "acme"); err != nil {
		t.Errorf("admin lists acme's quotas: %v", err)
	}
}

// mustRefuse checks that connecting with c fails, with an error of the kind
// want reports.
func mustRefuse(t *testing.T, url string, c auth.Credentials, want func(error) bool) {
	t.Helper()
	start := time.Now()
	nc, err := tryConnect(t, url, c)
	switch {
	case err == nil:
		t.Errorf("%s: connected (TLS required: %v)", url, nc.TLSRequired())
	case !want(err):
		t.Errorf("%s: refused with %v, not the expected kind of error", url, err)
	default:
		t.Logf("refused after %v: %v", time.Since(start).Round(time.Millisecond), err)
	}
}

// isAuthRefusal reports whether err is the server refusing the sign-in.
func isAuthRefusal(err error) bool { return errors.Is(err, nats.ErrAuthorization) }

// isTLSRefusal reports whether err is about TLS or certificates, not
// something else that happened to fail.
func isTLSRefusal(err error) bool {
	s := strings.ToLower(err.Error())
	return strings.Contains(s, "tls") || strings.Contains(s, "certificate") || strings.Contains(s, "x509")
}
