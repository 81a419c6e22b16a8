// Package backupupload copies a database's dumps from the backups volume to
// an S3-compatible bucket: `shopd backup-upload`, the second step of the
// backup CronJob's pod (the first, in the Postgres image, writes the dump).
// It uploads every dump of the database that the bucket does not hold yet
// (or holds with another size), so a run whose upload failed is caught up by
// the next one. It never deletes from the bucket: expire old dumps with the
// bucket's own lifecycle rules.
package backupupload

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/shopplatform/shop-operator/services/internal/platform"
)

// The environment `shopd backup-upload` reads. The S3_* values come from the
// Secret the Shop names (backup.s3.secretName).
const (
	EnvDir             = "BACKUP_DIR"           // the backups volume
	EnvDatabase        = "PGDATABASE"           // whose dumps: <database>-<UTC time>.dump
	EnvEndpoint        = "S3_ENDPOINT"          // https://host[:port] (http:// for plain text)
	EnvBucket          = "S3_BUCKET"            //
	EnvRegion          = "S3_REGION"            // optional
	EnvAccessKeyID     = "S3_ACCESS_KEY_ID"     //
	EnvSecretAccessKey = "S3_SECRET_ACCESS_KEY" //
	EnvPrefix          = "S3_PREFIX"            // object key prefix, e.g. <namespace>/<shop>/
)

// Config says what to upload where.
type Config struct {
	Dir, Database                                string
	Endpoint                                     *url.URL
	Bucket, Region, AccessKeyID, SecretAccessKey string
	Prefix                                       string
}

// ConfigFromEnv reads the Config; it names every missing variable at once.
func ConfigFromEnv() (Config, error) {
	c := Config{
		Dir: platform.Env(EnvDir, "/backups"), Database: os.Getenv(EnvDatabase),
		Bucket: os.Getenv(EnvBucket), Region: os.Getenv(EnvRegion),
		AccessKeyID: os.Getenv(EnvAccessKeyID), SecretAccessKey: os.Getenv(EnvSecretAccessKey),
		Prefix: os.Getenv(EnvPrefix),
	}
	var missing []string
	for name, v := range map[string]string{EnvDatabase: c.Database, EnvEndpoint: os.Getenv(EnvEndpoint), EnvBucket: c.Bucket,
		EnvAccessKeyID: c.AccessKeyID, EnvSecretAccessKey: c.SecretAccessKey} {
		if v == "" {
			missing = append(missing, name)
		}
	}
	if len(missing) > 0 {
		slices.Sort(missing)
		return c, fmt.Errorf("missing %s", strings.Join(missing, ", "))
	}
	u, err := url.Parse(os.Getenv(EnvEndpoint))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || strings.Trim(u.Path, "/") != "" {
		return c, fmt.Errorf("%s %q: want http(s)://host[:port]", EnvEndpoint, os.Getenv(EnvEndpoint))
	}
	c.Endpoint = u
	return c, nil
}

// Result lists the dumps by what happened to them.
type Result struct {
	Uploaded []string // object keys written by this run
	Present  []string // already in the bucket with the same size
}

// dumpName matches the backup script's file names (internal/builders/backups).
func dumpName(database string) *regexp.Regexp {
	return regexp.MustCompile(`^` + regexp.QuoteMeta(database) + `-[0-9]{8}T[0-9]{6}Z\.dump$`)
}

// Upload copies the database's dumps that the bucket lacks, oldest first.
// It goes on after a failed file and returns every failure.
func Upload(ctx context.Context, c Config) (Result, error) {
	var res Result
	s3, err := minio.New(c.Endpoint.Host, &minio.Options{
		Creds:  credentials.NewStaticV4(c.AccessKeyID, c.SecretAccessKey, ""),
		Secure: c.Endpoint.Scheme == "https",
		Region: c.Region,
	})
	if err != nil {
		return res, err
	}
	local, err := dumps(c.Dir, c.Database)
	if err != nil {
		return res, err
	}
	remote := map[string]int64{}
	for obj := range s3.ListObjects(ctx, c.Bucket, minio.ListObjectsOptions{Prefix: c.Prefix + c.Database + "-", Recursive: true}) {
		if obj.Err != nil {
			return res, fmt.Errorf("listing bucket %s: %w", c.Bucket, obj.Err)
		}
		remote[obj.Key] = obj.Size
	}
	var errs []error
	for _, name := range local {
		path, key := filepath.Join(c.Dir, name), c.Prefix+name
		fi, err := os.Stat(path)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if size, ok := remote[key]; ok && size == fi.Size() {
			res.Present = append(res.Present, key)
			continue
		}
		t0 := time.Now()
		_, err = s3.FPutObject(ctx, c.Bucket, key, path, putOptions)
		if err == nil {
			err = checkSize(ctx, s3, c.Bucket, key, fi.Size())
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("uploading %s to %s/%s: %w", name, c.Bucket, key, err))
			continue
		}
		slog.Info("uploaded", "file", name, "bucket", c.Bucket, "key", key, "bytes", fi.Size(), "seconds", time.Since(t0).Seconds())
		res.Uploaded = append(res.Uploaded, key)
	}
	return res, errors.Join(errs...)
}

// putOptions send every part as plain bytes with a Content-MD5 that the
// server checks, over http as over https. (minio-go's default over http, a
// chunk-signed stream, was stored with its chunk headers by an S3
// implementation that does not decode them in multipart parts.)
var putOptions = minio.PutObjectOptions{
	ContentType:          "application/octet-stream",
	DisableContentSha256: true,
	SendContentMd5:       true,
}

// checkSize asks the bucket what it stored: the client's count of bytes
// sent says nothing about what the server kept.
func checkSize(ctx context.Context, s3 *minio.Client, bucket, key string, want int64) error {
	info, err := s3.StatObject(ctx, bucket, key, minio.StatObjectOptions{})
	if err != nil {
		return err
	}
	if info.Size != want {
		return fmt.Errorf("the bucket holds %d bytes, the file has %d", info.Size, want)
	}
	return nil
}

// dumps lists the database's finished dumps, oldest first (names sort by time).
func dumps(dir, database string) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	match := dumpName(database)
	var out []string
	for _, e := range entries {
		if e.Type().IsRegular() && match.MatchString(e.Name()) {
			out = append(out, e.Name())
		}
	}
	slices.Sort(out)
	return out, nil
}

// runTimeout bounds one run: a stuck endpoint must not hold the backups
// volume (and with it the next backup) forever.
const runTimeout = time.Hour

// Run is `shopd backup-upload`: exit status 1 when any dump could not be
// uploaded, so the Job fails and shows it.
func Run(ctx context.Context, pc platform.Config) error {
	slog.SetDefault(slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: pc.LogLevel})))
	c, err := ConfigFromEnv()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, runTimeout)
	defer cancel()
	res, err := Upload(ctx, c)
	slog.Info("backup upload done", "database", c.Database, "bucket", c.Bucket, "uploaded", len(res.Uploaded), "already_there", len(res.Present))
	return err
}
