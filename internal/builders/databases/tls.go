package databases

import (
	"crypto/sha256"
	"encoding/hex"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/utils/ptr"

	"github.com/shopplatform/shop-operator/internal/render"
	"github.com/shopplatform/shop-operator/internal/secrets"
)

// TLSDir is where Postgres finds its certificate and key.
const TLSDir = "/etc/postgresql/tls"

// HBADir holds the database's pg_hba.conf.
const HBADir = "/etc/postgresql/hba"

// configChecksumAnnotation on the pod template restarts Postgres when its
// certificate or its pg_hba.conf changes (it reads them at start).
const configChecksumAnnotation = "commerce.shopplatform.io/config-checksum"

// args start Postgres with TLS on and our pg_hba.conf, which admits network
// clients only over TLS; the services and the backup job also verify the
// server (sslmode verify-full).
func args() []string {
	return []string{
		"postgres",
		"-c", "ssl=on",
		"-c", "ssl_cert_file=" + TLSDir + "/" + secrets.TLSCertKey,
		"-c", "ssl_key_file=" + TLSDir + "/" + secrets.TLSKeyKey,
		"-c", "hba_file=" + HBADir + "/" + hbaKey,
	}
}

// tlsSecret renders the database's generated CA and server certificate.
// Unlike the credentials it is not retained with the volume: no data depends
// on it, and a re-created Shop generates a new one that every client trusts.
func tlsSecret(in render.Input, svc string) (*corev1.Secret, error) {
	name := secrets.DatabaseTLSSecretName(in, svc)
	keys := []string{secrets.CACertKey, secrets.TLSCertKey, secrets.TLSKeyKey}
	gen, err := in.GeneratedValues(name, keys...)
	if err != nil {
		return nil, err
	}
	data := map[string][]byte{}
	for _, k := range keys {
		data[k] = gen[k]
	}
	return &corev1.Secret{
		ObjectMeta: in.ObjectMeta(name, component(svc)),
		Type:       corev1.SecretTypeTLS,
		Data:       data,
	}, nil
}

// tlsVolume mounts the certificate and key, not the CA. Postgres refuses a
// key file that group or others may read unless root owns it and its mode is
// 0640 or less: the kubelet writes Secret files as root and gives them the
// pod's fsGroup (the postgres group), so 0640 lets Postgres read the key.
func tlsVolume(in render.Input, svc string) corev1.Volume {
	return corev1.Volume{Name: "tls", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{
		SecretName:  secrets.DatabaseTLSSecretName(in, svc),
		Items:       []corev1.KeyToPath{{Key: secrets.TLSCertKey, Path: secrets.TLSCertKey}, {Key: secrets.TLSKeyKey, Path: secrets.TLSKeyKey}},
		DefaultMode: ptr.To[int32](0o640),
	}}}
}

// configChecksum identifies the certificate (without hashing the key) and pg_hba.conf.
func configChecksum(tls *corev1.Secret) string {
	h := sha256.New()
	h.Write(tls.Data[secrets.TLSCertKey])
	h.Write([]byte(hbaConf))
	return hex.EncodeToString(h.Sum(nil))
}
