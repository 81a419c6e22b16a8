package backupupload

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"io"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"
	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/shopplatform/shop-operator/services/internal/devstack"
)

const bucket = "shop-backups"

// fakeS3 serves an in-memory S3 on loopback with one empty bucket.
func fakeS3(t *testing.T) (*url.URL, *minio.Client) {
	t.Helper()
	backend := s3mem.New()
	if err := backend.CreateBucket(bucket); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(gofakes3.New(backend).Server())
	t.Cleanup(srv.Close)
	u, _ := url.Parse(srv.URL)
	client, err := minio.New(u.Host, &minio.Options{Creds: credentials.NewStaticV4("test", "test", "")})
	if err != nil {
		t.Fatal(err)
	}
	return u, client
}

func config(endpoint *url.URL, dir string) Config {
	return Config{Dir: dir, Database: "orders", Endpoint: endpoint, Bucket: bucket,
		AccessKeyID: "test", SecretAccessKey: "test", Prefix: "shop/demo/"}
}

func write(t *testing.T, dir, name string, data []byte) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
		t.Fatal(err)
	}
}

func random(t *testing.T, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

func object(t *testing.T, c *minio.Client, key string) []byte {
	t.Helper()
	o, err := c.GetObject(context.Background(), bucket, key, minio.GetObjectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer o.Close()
	b, err := io.ReadAll(o)
	if err != nil {
		t.Fatalf("reading %s: %v", key, err)
	}
	return b
}

// TestUploadCopiesTheDatabasesDumps: the dumps of the database and nothing
// else reach the bucket byte for byte (one above the 16 MiB multipart
// threshold); a second run uploads nothing; a new dump and a copy the bucket
// holds truncated are uploaded by the next run.
func TestUploadCopiesTheDatabasesDumps(t *testing.T) {
	endpoint, s3 := fakeS3(t)
	dir := t.TempDir()
	dumps := map[string][]byte{
		"orders-20260101T000000Z.dump": random(t, 20<<20),
		"orders-20260101T010000Z.dump": random(t, 1708),
	}
	for name, data := range dumps {
		write(t, dir, name, data)
	}
	// Not this database's finished dumps.
	write(t, dir, ".orders-20260101T020000Z.dump.partial", []byte("half"))
	write(t, dir, "auth-20260101T000000Z.dump", []byte("auth"))
	write(t, dir, "orders-manual.dump", []byte("someone's copy"))
	ctx := context.Background()

	res, err := Upload(ctx, config(endpoint, dir))
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"shop/demo/orders-20260101T000000Z.dump", "shop/demo/orders-20260101T010000Z.dump"}
	if !slices.Equal(res.Uploaded, want) || len(res.Present) != 0 {
		t.Fatalf("first run: %+v, want uploaded %v", res, want)
	}
	var keys []string
	for o := range s3.ListObjects(ctx, bucket, minio.ListObjectsOptions{Recursive: true}) {
		keys = append(keys, o.Key)
	}
	if !slices.Equal(keys, want) {
		t.Errorf("bucket holds %v, want %v", keys, want)
	}
	for name, data := range dumps {
		if got := object(t, s3, "shop/demo/"+name); !bytes.Equal(got, data) {
			t.Errorf("%s: %d bytes in the bucket differ from the file's %d", name, len(got), len(data))
		}
	}

	res, err = Upload(ctx, config(endpoint, dir))
	if err != nil || len(res.Uploaded) != 0 || !slices.Equal(res.Present, want) {
		t.Fatalf("second run: %+v, %v; want nothing uploaded", res, err)
	}

	next := random(t, 4096)
	write(t, dir, "orders-20260101T020000Z.dump", next)
	if _, err := s3.PutObject(ctx, bucket, want[1], strings.NewReader("trunc"), 5, minio.PutObjectOptions{}); err != nil {
		t.Fatal(err)
	}
	res, err = Upload(ctx, config(endpoint, dir))
	if err != nil {
		t.Fatal(err)
	}
	if w := []string{want[1], "shop/demo/orders-20260101T020000Z.dump"}; !slices.Equal(res.Uploaded, w) {
		t.Errorf("third run uploaded %v, want %v", res.Uploaded, w)
	}
	if got := object(t, s3, want[1]); !bytes.Equal(got, dumps["orders-20260101T010000Z.dump"]) {
		t.Error("the truncated copy was not replaced")
	}
}

// TestUploadFails: a missing bucket or an unreachable endpoint is an error
// that names it.
func TestUploadFails(t *testing.T) {
	endpoint, _ := fakeS3(t)
	dir := t.TempDir()
	write(t, dir, "orders-20260101T000000Z.dump", []byte("dump"))
	c := config(endpoint, dir)
	c.Bucket = "no-such-bucket"
	if _, err := Upload(context.Background(), c); err == nil || !strings.Contains(err.Error(), "no-such-bucket") {
		t.Errorf("missing bucket: err = %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	closed := httptest.NewServer(nil)
	closed.Close()
	u, _ := url.Parse(closed.URL)
	if _, err := Upload(ctx, config(u, dir)); err == nil {
		t.Error("an unreachable endpoint: no error")
	}
}

func TestConfigFromEnv(t *testing.T) {
	for _, k := range []string{EnvDatabase, EnvEndpoint, EnvBucket, EnvAccessKeyID, EnvSecretAccessKey, EnvRegion, EnvPrefix} {
		t.Setenv(k, "")
	}
	_, err := ConfigFromEnv()
	if err == nil || err.Error() != "missing PGDATABASE, S3_ACCESS_KEY_ID, S3_BUCKET, S3_ENDPOINT, S3_SECRET_ACCESS_KEY" {
		t.Errorf("empty environment: %v", err)
	}
	t.Setenv(EnvDatabase, "orders")
	t.Setenv(EnvBucket, bucket)
	t.Setenv(EnvAccessKeyID, "id")
	t.Setenv(EnvSecretAccessKey, "secret")
	for endpoint, ok := range map[string]bool{
		"https://s3.eu-central-1.amazonaws.com": true, "http://minio.storage:9000": true, "https://host/": true,
		"s3.amazonaws.com": false, "ftp://host": false, "https://host/bucket": false,
	} {
		t.Setenv(EnvEndpoint, endpoint)
		if _, err := ConfigFromEnv(); (err == nil) != ok {
			t.Errorf("endpoint %q: err = %v", endpoint, err)
		}
	}
}

// TestShopdBackupUpload runs the real `shopd backup-upload` as the CronJob
// does: exit 0 with the dump in the bucket, exit 1 when the bucket is missing.
func TestShopdBackupUpload(t *testing.T) {
	if testing.Short() {
		t.Skip("builds shopd")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 9*time.Minute)
	defer cancel()
	shopd, err := devstack.BuildShopd(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	endpoint, s3 := fakeS3(t)
	dir := t.TempDir()
	write(t, dir, "orders-20260101T000000Z.dump", []byte("dump"))
	run := func(bucket string) (string, error) {
		cmd := exec.CommandContext(ctx, shopd, "backup-upload")
		cmd.Env = append(os.Environ(), EnvDir+"="+dir, EnvDatabase+"=orders", EnvEndpoint+"="+endpoint.String(),
			EnvBucket+"="+bucket, EnvAccessKeyID+"=id", EnvSecretAccessKey+"=secret", EnvPrefix+"=shop/demo/")
		cmd.WaitDelay = 10 * time.Second
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	if out, err := run(bucket); err != nil {
		t.Fatalf("shopd backup-upload: %v\n%s", err, out)
	}
	if got := object(t, s3, "shop/demo/orders-20260101T000000Z.dump"); string(got) != "dump" {
		t.Errorf("bucket holds %q", got)
	}
	out, err := run("no-such-bucket")
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 1 || !strings.Contains(out, "no-such-bucket") {
		t.Errorf("missing bucket: %v\n%s", err, out)
	}
}
