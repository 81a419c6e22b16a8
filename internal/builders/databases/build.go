// Package databases renders a Postgres for every managed database (auth,
// catalog, orders): its credentials and TLS Secrets, headless Service,
// init-script ConfigMap and StatefulSet (Postgres with TLS on). External databases render nothing: the services
// read their connection from the user's Secret. Build is pure: it reads only
// its input.
package databases

import (
	"strconv"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/shopplatform/shop-operator/internal/render"
	"github.com/shopplatform/shop-operator/internal/secrets"
)

// Build returns the objects of every managed database.
func Build(in render.Input) ([]client.Object, error) {
	var objs []client.Object
	for _, svc := range render.Databases {
		m := in.ManagedDatabase(svc)
		if m == nil {
			continue
		}
		secret, err := credentials(in, svc)
		if err != nil {
			return nil, err
		}
		tls, err := tlsSecret(in, svc)
		if err != nil {
			return nil, err
		}
		objs = append(objs, secret, tls, initScript(in, svc), headlessService(in, svc), statefulSet(in, svc, m, tls))
	}
	return objs, nil
}

// component is the label value of a database's objects, e.g. auth-db.
func component(svc string) string { return svc + "-db" }

// credentials renders the generated passwords (created once, never
// regenerated) together with the connection of the service's own role, in
// the same shape as an external database's Secret.
func credentials(in render.Input, svc string) (*corev1.Secret, error) {
	name := in.DatabaseSecretName(svc)
	gen, err := in.GeneratedValues(name, secrets.PasswordKey, secrets.SuperuserPasswordKey)
	if err != nil {
		return nil, err
	}
	data := map[string][]byte{
		secrets.HostKey:   []byte(in.DatabaseName(svc)),
		secrets.PortKey:   []byte(strconv.Itoa(render.PostgresPort)),
		secrets.DBNameKey: []byte(svc),
		secrets.UserKey:   []byte(svc),
	}
	for _, k := range []string{secrets.PasswordKey, secrets.SuperuserPasswordKey} {
		data[k] = gen[k]
	}
	meta := in.ObjectMeta(name, component(svc))
	// The credentials live as long as the retained volume, not the Shop.
	meta.Annotations = map[string]string{render.AnnotationRetain: "true"}
	return &corev1.Secret{
		ObjectMeta: meta,
		Type:       corev1.SecretTypeOpaque,
		Data:       data,
	}, nil
}

// headlessService gives the single Postgres pod a stable DNS name
// (<shop>-<svc>-db) and exposes the exporter's metrics when it runs.
func headlessService(in render.Input, svc string) *corev1.Service {
	ports := []corev1.ServicePort{{
		Name: "postgres", Port: render.PostgresPort, Protocol: corev1.ProtocolTCP,
		TargetPort: intstr.FromString("postgres"), AppProtocol: ptr.To("postgresql"),
	}}
	if exporterEnabled(in) {
		ports = append(ports, corev1.ServicePort{
			Name: metricsPortName, Port: render.PostgresExporterPort, Protocol: corev1.ProtocolTCP,
			TargetPort: intstr.FromString(metricsPortName), AppProtocol: ptr.To("http"),
		})
	}
	return &corev1.Service{
		ObjectMeta: in.ObjectMeta(in.DatabaseName(svc), component(svc)),
		Spec: corev1.ServiceSpec{
			ClusterIP: corev1.ClusterIPNone,
			Selector:  in.SelectorLabels(component(svc)),
			Ports:     ports,
		},
	}
}

// initScript holds the database's files: the script that creates the
// service's role and database on the first start of an empty data directory
// (the role is not a superuser and cannot create roles or databases: the
// services never get the superuser), and the client authentication rules.
func initScript(in render.Input, svc string) *corev1.ConfigMap {
	return &corev1.ConfigMap{
		ObjectMeta: in.ObjectMeta(in.DatabaseName(svc)+"-init", component(svc)),
		Data:       map[string]string{initScriptKey: initSQL, hbaKey: hbaConf},
	}
}

const (
	initScriptKey = "10-create-service-role.sh"
	hbaKey        = "pg_hba.conf"
)

// hbaConf replaces the image's pg_hba.conf (written once into the data
// directory, so only a file of our own reaches existing databases too).
// Inside the pod: trust over the Unix socket (the init scripts, kubectl exec
// psql), a password over loopback (the exporter; an Istio sidecar, if one is
// ever injected, also delivers over loopback). From the network: only over
// TLS, with a password (the image's method): a client that asks for a plain
// connection is refused, whatever its sslmode.
const hbaConf = `# TYPE    DATABASE  USER  ADDRESS       METHOD
local     all       all                 trust
host      all       all   127.0.0.1/32  scram-sha-256
host      all       all   ::1/128       scram-sha-256
hostssl   all       all   all           scram-sha-256
`

// initSQL runs under the postgres image's docker-entrypoint-initdb.d; psql
// variables quote the role, database and password safely.
const initSQL = `#!/bin/sh
set -eu
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname postgres \
  -v role="$SERVICE_ROLE" -v password="$SERVICE_PASSWORD" -v db="$SERVICE_DATABASE" <<'SQL'
CREATE ROLE :"role" LOGIN PASSWORD :'password' NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION;
CREATE DATABASE :"db" OWNER :"role";
REVOKE ALL ON DATABASE :"db" FROM PUBLIC;
SQL
`
