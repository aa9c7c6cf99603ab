package redistest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

// TLSCerts is a throwaway certificate authority and a server certificate it
// signed, written as PEM files in a temporary directory, for starting a
// TLS redis-server (StartTLSServer) and trusting it from a client.
type TLSCerts struct {
	CertFile string // the server's certificate
	KeyFile  string // its private key (PKCS #8)
	CAFile   string // the CA's certificate
	// Pool trusts this CA alone: put it in Config.TLS.RootCAs.
	Pool *x509.CertPool
}

// NewTLSCerts makes a fresh CA and a server certificate for hosts (IP
// addresses or DNS names), valid for one hour. With no hosts the
// certificate names 127.0.0.1, ::1 and localhost. Every call makes a new
// CA, so two TLSCerts never trust each other's servers.
func NewTLSCerts(tb testing.TB, hosts ...string) TLSCerts {
	tb.Helper()
	if len(hosts) == 0 {
		hosts = []string{"127.0.0.1", "::1", "localhost"}
	}
	dir := tb.TempDir()
	c, err := newTLSCerts(dir, hosts)
	if err != nil {
		tb.Fatalf("redistest: make TLS certificates: %v", err)
	}
	return c
}

func newTLSCerts(dir string, hosts []string) (TLSCerts, error) {
	now := time.Now()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return TLSCerts{}, err
	}
	caTmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: "redistest CA"},
		NotBefore:             now.Add(-time.Minute), // tolerate a little clock skew
		NotAfter:              now.Add(time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return TLSCerts{}, err
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		return TLSCerts{}, err
	}

	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return TLSCerts{}, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial(),
		Subject:      pkix.Name{CommonName: hosts[0]},
		NotBefore:    now.Add(-time.Minute),
		NotAfter:     now.Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		return TLSCerts{}, err
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return TLSCerts{}, err
	}

	c := TLSCerts{
		CertFile: filepath.Join(dir, "server.crt"),
		KeyFile:  filepath.Join(dir, "server.key"),
		CAFile:   filepath.Join(dir, "ca.crt"),
		Pool:     x509.NewCertPool(),
	}
	c.Pool.AddCert(ca)
	for _, f := range []struct {
		path, typ string
		der       []byte
		mode      os.FileMode
	}{
		{c.CertFile, "CERTIFICATE", der, 0o644},
		{c.KeyFile, "PRIVATE KEY", keyDER, 0o600},
		{c.CAFile, "CERTIFICATE", caDER, 0o644},
	} {
		if err := os.WriteFile(f.path, pem.EncodeToMemory(&pem.Block{Type: f.typ, Bytes: f.der}), f.mode); err != nil {
			return TLSCerts{}, err
		}
	}
	return c, nil
}

func serial() *big.Int {
	n, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 120))
	return n
}

// StartTLSServer starts a throwaway redis-server that speaks TLS only (its
// plain port is off) on a free loopback port, with certs's server
// certificate, plus any extra arguments (e.g. "--requirepass", "x"). Client
// certificates are not asked for ("--tls-auth-clients no"; pass
// "--tls-auth-clients", "yes" to require them). Server.Addr is the TLS
// address; Kill, Pause, Restart and Start work as for StartServer. It is
// killed at cleanup. The redis-server on PATH must be built with TLS
// (Debian's is).
func StartTLSServer(tb testing.TB, certs TLSCerts, args ...string) *Server {
	tb.Helper()
	dir, err := os.MkdirTemp("", "redistest-tls-")
	if err != nil {
		tb.Fatalf("redistest: %v", err)
	}
	port, err := freePort()
	if err != nil {
		tb.Fatalf("redistest: %v", err)
	}
	s := &Server{
		Addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port)),
		Port: port,
		Dir:  dir,
		// start() puts "--port <Port>" first; a later "--port 0" wins, so
		// the port is served with TLS only.
		args: append([]string{
			"--port", "0", "--tls-port", strconv.Itoa(port),
			"--tls-cert-file", certs.CertFile, "--tls-key-file", certs.KeyFile,
			"--tls-ca-cert-file", certs.CAFile, "--tls-auth-clients", "no",
		}, args...),
	}
	if err := s.start(); err != nil {
		tb.Fatalf("redistest: TLS server: %v (%s; redis-server must be built with TLS)", err, installHint)
	}
	tb.Cleanup(s.Close)
	return s
}
