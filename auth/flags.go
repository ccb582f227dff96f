package auth

import "flag"

// RegisterFlags adds the connection flags every command that connects to
// NATS takes: --nkey, --creds, --inbox-prefix and, with tls, --tls-ca,
// --tls-cert and --tls-key.
func (c *Credentials) RegisterFlags(fs *flag.FlagSet, tls bool) {
	fs.StringVar(&c.NKeyFile, "nkey", "", "sign in with this nkey seed file (ledger creds add --out)")
	fs.StringVar(&c.CredsFile, "creds", "", "sign in with this JWT creds file (an operator-mode cluster)")
	fs.StringVar(&c.InboxPrefix, "inbox-prefix", "", "receive replies under this prefix (default: _INBOX_<the user's public key>, with --nkey or --creds)")
	if tls {
		c.RegisterTLSFlags(fs)
	}
}

// RegisterTLSFlags adds --tls-ca, --tls-cert and --tls-key as a client's.
func (c *Credentials) RegisterTLSFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.CAFile, "tls-ca", "", "CA certificate that signed the NATS server's certificate (connect over TLS)")
	fs.StringVar(&c.CertFile, "tls-cert", "", "client certificate, for a server that asks for one")
	fs.StringVar(&c.KeyFile, "tls-key", "", "client certificate's key")
}
