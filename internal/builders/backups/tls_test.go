package backups_test

import (
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"

	shopv1 "github.com/shopplatform/shop-operator/api/v1alpha1"
	"github.com/shopplatform/shop-operator/internal/builders/databases"
	"github.com/shopplatform/shop-operator/internal/pgtest"
	"github.com/shopplatform/shop-operator/internal/render"
	"github.com/shopplatform/shop-operator/internal/render/rendertest"
	"github.com/shopplatform/shop-operator/internal/secrets"
)

// startTLSDatabase serves the orders database of a production Shop the way
// its StatefulSet does: the operator's generated certificate and key (the
// key written as the kubelet writes it), the rendered server args and
// pg_hba.conf, the generated superuser password. Connections are logged, so
// a test can tell which ones used TLS. It returns the server and the Shop's
// input, with the generated values in it.
func startTLSDatabase(t *testing.T) (*pgtest.Server, render.Input) {
	t.Helper()
	in := rendertest.Input(shopv1.ShopSpec{Environment: shopv1.Production})
	generated, err := secrets.Fill(secrets.For(in), nil)
	if err != nil {
		t.Fatal(err)
	}
	in.Generated = generated
	objs, err := databases.Build(in)
	if err != nil {
		t.Fatal(err)
	}
	var sts *appsv1.StatefulSet
	var hba string
	for _, o := range objs {
		switch o := o.(type) {
		case *appsv1.StatefulSet:
			if o.Name == in.DatabaseName(render.Orders) {
				sts = o
			}
		case *corev1.ConfigMap:
			if o.Labels["app.kubernetes.io/component"] == render.Orders+"-db" && o.Data["pg_hba.conf"] != "" {
				hba = o.Data["pg_hba.conf"]
			}
		}
	}
	if sts == nil || hba == "" {
		t.Fatal("no StatefulSet or pg_hba.conf for the orders database")
	}
	pod := sts.Spec.Template.Spec
	c := container(t, pod, "postgres")
	if len(c.Args) == 0 || c.Args[0] != "postgres" {
		t.Fatalf("postgres args %v", c.Args)
	}
	password := string(in.Generated[in.DatabaseSecretName(render.Orders)][secrets.SuperuserPasswordKey])

	return pgtest.Start(t, password, func(dir string, uid, gid int) []string {
		tlsDir, hbaDir := filepath.Join(dir, "tls"), filepath.Join(dir, "hba")
		for _, d := range []string{tlsDir, hbaDir} {
			if err := os.Mkdir(d, 0o755); err != nil {
				t.Fatal(err)
			}
		}
		for _, m := range c.VolumeMounts {
			if m.MountPath == databases.TLSDir {
				writeSecretVolume(t, in, volumeOf(t, pod, m.Name), tlsDir, gid)
			}
		}
		if err := os.WriteFile(filepath.Join(hbaDir, "pg_hba.conf"), []byte(hba), 0o644); err != nil {
			t.Fatal(err)
		}
		args := []string{"-c", "log_connections=on"}
		for _, a := range c.Args[1:] {
			a = strings.ReplaceAll(a, databases.TLSDir, tlsDir)
			args = append(args, strings.ReplaceAll(a, databases.HBADir, hbaDir))
		}
		return args
	}), in
}

// writeSecretVolume writes a Secret volume's items from the generated values
// as the kubelet does: owned by root with the fsGroup and the volume's mode
// when the test runs as root; else owned by the test's user, readable by it
// alone (Postgres accepts a key it owns only with mode 0600).
func writeSecretVolume(t *testing.T, in render.Input, v *corev1.Volume, dir string, gid int) {
	t.Helper()
	if v.Secret == nil {
		t.Fatalf("volume %s is not a Secret", v.Name)
	}
	data, ok := in.Generated[v.Secret.SecretName]
	if !ok {
		t.Fatalf("volume %s: Secret %s is not generated", v.Name, v.Secret.SecretName)
	}
	mode := os.FileMode(0o644)
	if v.Secret.DefaultMode != nil {
		mode = os.FileMode(*v.Secret.DefaultMode)
	}
	for _, it := range v.Secret.Items {
		f := filepath.Join(dir, it.Path)
		if err := os.WriteFile(f, data[it.Key], 0o600); err != nil {
			t.Fatal(err)
		}
		if gid < 0 {
			continue
		}
		if err := os.Chown(f, 0, gid); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(f, mode); err != nil {
			t.Fatal(err)
		}
	}
}

// renderedEnv is a rendered container's environment as the kubelet gives
// it: values as written, Secret references resolved from the generated
// values, and every path under a Secret volume's mount pointing at that
// volume written out in a temporary directory. The database's Service name
// reaches the test's server through PGHOSTADDR (standing for the cluster's
// DNS) and its port: everything else that decides how pg_dump and
// pg_restore connect (host name for verify-full, sslmode, CA, user,
// password) is the builder's.
func renderedEnv(t *testing.T, in render.Input, pod corev1.PodSpec, name string, pg *pgtest.Server) []string {
	t.Helper()
	c := container(t, pod, name)
	mounted := map[string]string{} // mount path in the pod -> directory here
	for _, m := range c.VolumeMounts {
		if v := volumeOf(t, pod, m.Name); v.Secret != nil {
			dir := t.TempDir()
			writeSecretVolume(t, in, v, dir, -1)
			mounted[m.MountPath] = dir
		}
	}
	env := append(os.Environ(), "PATH="+pg.Bin+":"+os.Getenv("PATH"))
	for _, e := range c.Env {
		value := e.Value
		switch {
		case e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil:
			ref := e.ValueFrom.SecretKeyRef
			v, ok := in.Generated[ref.Name][ref.Key]
			if !ok {
				t.Fatalf("%s: %s from Secret %s key %s, which is not generated", name, e.Name, ref.Name, ref.Key)
			}
			value = string(v)
		case e.ValueFrom != nil:
			t.Fatalf("%s: %s has a source the test does not resolve: %v", name, e.Name, e.ValueFrom)
		}
		for path, dir := range mounted {
			if strings.HasPrefix(value, path+"/") {
				value = dir + strings.TrimPrefix(value, path)
			}
		}
		env = append(env, e.Name+"="+value)
	}
	return append(env, "PGHOSTADDR=127.0.0.1", "PGPORT="+strconv.Itoa(pg.Port))
}

func container(t *testing.T, pod corev1.PodSpec, name string) corev1.Container {
	t.Helper()
	for _, c := range slices.Concat(pod.InitContainers, pod.Containers) {
		if c.Name == name {
			return c
		}
	}
	t.Fatalf("no container %s", name)
	return corev1.Container{}
}

func volumeOf(t *testing.T, pod corev1.PodSpec, name string) *corev1.Volume {
	t.Helper()
	for i := range pod.Volumes {
		if pod.Volumes[i].Name == name {
			return &pod.Volumes[i]
		}
	}
	t.Fatalf("no volume %s", name)
	return nil
}

// connectionsOf returns the server's log lines of connections made by app
// (its application_name, as pg_dump and pg_restore set it).
func connectionsOf(t *testing.T, pg *pgtest.Server, app string) []string {
	t.Helper()
	b, err := os.ReadFile(pg.Log)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, line := range strings.Split(string(b), "\n") {
		if strings.Contains(line, "connection authorized:") && strings.Contains(line, "application_name="+app) {
			out = append(out, line)
		}
	}
	return out
}

// checkTLS fails unless app connected, and only over TLS.
func checkTLS(t *testing.T, pg *pgtest.Server, app string) {
	t.Helper()
	lines := connectionsOf(t, pg, app)
	if len(lines) == 0 {
		t.Errorf("no connection of %s in the server's log", app)
	}
	for _, l := range lines {
		if !strings.Contains(l, "SSL enabled") {
			t.Errorf("%s connected without TLS: %s", app, l)
		}
	}
}
