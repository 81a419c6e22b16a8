package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"slices"
	"time"

	"github.com/spf13/cobra"
	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	shopv1 "github.com/shopplatform/shop-operator/api/v1alpha1"
	"github.com/shopplatform/shop-operator/internal/builders/backups"
	"github.com/shopplatform/shop-operator/internal/engine"
	"github.com/shopplatform/shop-operator/internal/render"
	"github.com/shopplatform/shop-operator/internal/scheme"
	"github.com/shopplatform/shop-operator/internal/status"
)

// fieldOwner marks shopctl's own writes (pause, scale, suspend).
const fieldOwner = "shopctl"

func newDBCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "db",
		Short: "Operate a Shop's managed databases",
	}
	cmd.AddCommand(newDBRestoreCmd())
	return cmd
}

func newDBRestoreCmd() *cobra.Command {
	var (
		flags   clusterFlags
		from    string
		timeout time.Duration
	)
	cmd := &cobra.Command{
		Use:   "restore SHOP DATABASE --from BACKUP",
		Short: "Restore a managed database from a backup in its backups volume",
		Long: `restore replaces the contents of DATABASE (auth, catalog or orders) of the Shop SHOP with
the pg_dump file BACKUP from the volume <shop>-<db>-db-backups, without the operator fighting it:

  1. pause the Shop (spec.paused=true) so the operator changes nothing, and wait until the
     operator has recorded it (condition Reconciling, reason Paused, for this generation);
  2. suspend the backup CronJob (waiting for a running backup to finish) and scale the
     database's service (Deployment <shop>-<db>) to 0, waiting until its pods are gone, so
     nothing writes or holds locks;
  3. run the Job <shop>-<db>-db-restore: pg_restore --clean --if-exists --single-transaction
     as the database superuser (a failed restore leaves the database as it was);
  4. on success, scale the service back, resume the CronJob and unpause the Shop.

On failure or timeout everything stays paused and scaled down, and the next steps are printed.
BACKUP is a file name in the volume, as the backup Job logs it (orders-20260101T030000Z.dump).`,
		Example: `  kubectl logs -n shop job/demo-orders-db-backup-29412345   # names the dump it wrote
  $CMD db restore demo orders --from orders-20260101T030000Z.dump -n shop`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkRestoreArgs(args[1], from); err != nil {
				return err
			}
			cfg, ns, err := flags.restConfig()
			if err != nil {
				return err
			}
			c, err := client.New(cfg, client.Options{Scheme: scheme.Scheme})
			if err != nil {
				return err
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), timeout)
			defer cancel()
			r := restorer{c: c, out: cmd.OutOrStdout(), poll: 2 * time.Second}
			return r.restore(ctx, types.NamespacedName{Namespace: ns, Name: args[0]}, args[1], from)
		},
	}
	flags.add(cmd.Flags())
	cmd.Flags().StringVar(&from, "from", "", "backup file name in the backups volume (required)")
	cmd.Flags().DurationVar(&timeout, "timeout", 30*time.Minute, "give up waiting after this long (everything stays paused)")
	_ = cmd.MarkFlagRequired("from")
	return cmd
}

func checkRestoreArgs(db, from string) error {
	if !slices.Contains(render.Databases, db) {
		return fmt.Errorf("unknown database %q: one of %v", db, render.Databases)
	}
	if from == "" || filepath.Base(from) != from || from == "." || from == ".." || from[0] == '.' {
		return fmt.Errorf("--from %q: name a file in the backups volume, without a directory", from)
	}
	return nil
}

// restConfig chooses the cluster and namespace as connect does.
func (f *clusterFlags) restConfig() (*rest.Config, string, error) {
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	rules.ExplicitPath = f.kubeconfig
	loader := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{CurrentContext: f.context})
	cfg, err := loader.ClientConfig()
	if err != nil {
		return nil, "", err
	}
	ns := f.namespace
	if ns == "" {
		if ns, _, err = loader.Namespace(); err != nil {
			return nil, "", err
		}
	}
	return cfg, ns, nil
}

type restorer struct {
	c    client.Client
	out  io.Writer
	poll time.Duration
}

func (r restorer) restore(ctx context.Context, key types.NamespacedName, db, file string) error {
	shop := &shopv1.Shop{}
	if err := r.c.Get(ctx, key, shop); err != nil {
		return fmt.Errorf("reading Shop %s: %w", key, err)
	}
	// The restore Job is rendered from the Shop's resolved spec alone: no
	// cluster state (optional APIs, Secrets) goes into it.
	p, err := engine.Prepare(ctx, shop, render.APIs{}, nil, engine.Placeholders)
	if err != nil {
		return err
	}
	in := p.Input
	job, err := backups.RestoreJob(in, db, file)
	if err != nil {
		return err
	}
	existing := &batchv1.Job{}
	if err := r.c.Get(ctx, client.ObjectKeyFromObject(job), existing); err == nil {
		return fmt.Errorf("Job %s exists (a restore is running, or a finished one is kept for a day): read its logs, then kubectl delete job %s -n %s", job.Name, job.Name, key.Namespace)
	} else if !apierrors.IsNotFound(err) {
		return err
	}

	wasPaused := shop.Spec.Paused
	if err := r.setPaused(ctx, shop, true); err != nil {
		return err
	}
	r.say("paused Shop %s", key.Name)
	// A reconcile that began before the pause may still apply the service's
	// replicas: scale down only once the operator has recorded the pause.
	if err := r.waitPauseObserved(ctx, key); err != nil {
		return r.stuck(key, err)
	}
	cronJob := types.NamespacedName{Namespace: key.Namespace, Name: backups.CronJobName(in, db)}
	if err := r.suspend(ctx, cronJob, true); err != nil {
		return r.stuck(key, err)
	}
	// A running backup holds the ReadWriteOnce volume the restore mounts.
	if err := r.waitNoBackup(ctx, cronJob); err != nil {
		return r.stuck(key, err)
	}
	deploy := types.NamespacedName{Namespace: key.Namespace, Name: in.Name(db)}
	replicas, err := r.scale(ctx, deploy, 0)
	if err != nil {
		return r.stuck(key, err)
	}
	r.say("scaled Deployment %s from %d to 0; waiting for its pods to stop", deploy.Name, replicas)
	if err := r.waitStopped(ctx, deploy); err != nil {
		return r.stuck(key, err)
	}

	if err := r.c.Create(ctx, job, client.FieldOwner(fieldOwner)); err != nil {
		return r.stuck(key, fmt.Errorf("creating Job %s: %w", job.Name, err))
	}
	r.say("restoring %s from %s (Job %s)", db, file, job.Name)
	start := time.Now()
	if err := r.waitJob(ctx, client.ObjectKeyFromObject(job)); err != nil {
		return r.stuck(key, fmt.Errorf("%w; logs: kubectl logs -n %s job/%s", err, key.Namespace, job.Name))
	}
	r.say("restored in %s", time.Since(start).Round(time.Second))

	if _, err := r.scale(ctx, deploy, replicas); err != nil {
		return r.stuck(key, err)
	}
	if err := r.suspend(ctx, cronJob, false); err != nil {
		return r.stuck(key, err)
	}
	if !wasPaused {
		if err := r.setPaused(ctx, shop, false); err != nil {
			return err
		}
		r.say("resumed Shop %s", key.Name)
	} else {
		r.say("Shop %s was paused before the restore and stays paused", key.Name)
	}
	return nil
}

func (r restorer) say(format string, args ...any) { fmt.Fprintf(r.out, format+"\n", args...) }

// stuck explains how to resume by hand after a failure.
func (r restorer) stuck(key types.NamespacedName, err error) error {
	return fmt.Errorf(`%w
the Shop stays paused and its service scaled down; after fixing the cause, resume with:
  kubectl patch shop %s -n %s --type merge -p '{"spec":{"paused":false}}'
(the operator then scales the service back; resume the backup CronJob with kubectl patch cronjob ... -p '{"spec":{"suspend":false}}')`,
		err, key.Name, key.Namespace)
}

func (r restorer) setPaused(ctx context.Context, shop *shopv1.Shop, paused bool) error {
	patch := client.MergeFrom(shop.DeepCopy())
	shop.Spec.Paused = paused
	if err := r.c.Patch(ctx, shop, patch, client.FieldOwner(fieldOwner)); err != nil {
		return fmt.Errorf("setting spec.paused=%t on Shop %s: %w", paused, shop.Name, err)
	}
	return nil
}

// waitPauseObserved waits until the operator has recorded the pause of the
// Shop's current generation (condition Reconciling, reason Paused; the
// status's own observedGeneration stays at the last generation fully
// applied): the operator reconciles one Shop at a time, so no reconcile of
// an earlier generation is still running.
func (r restorer) waitPauseObserved(ctx context.Context, key types.NamespacedName) error {
	return r.until(ctx, "the operator to record the pause of Shop "+key.Name, func() (bool, error) {
		shop := &shopv1.Shop{}
		if err := r.c.Get(ctx, key, shop); err != nil {
			return false, err
		}
		c := meta.FindStatusCondition(shop.Status.Conditions, shopv1.ConditionReconciling)
		return c != nil && c.Reason == status.ReasonPaused && c.ObservedGeneration >= shop.Generation, nil
	})
}

// suspend pauses or resumes the backup CronJob; a database without backups has none.
func (r restorer) suspend(ctx context.Context, key types.NamespacedName, suspend bool) error {
	cj := &batchv1.CronJob{}
	if err := r.c.Get(ctx, key, cj); apierrors.IsNotFound(err) {
		return nil
	} else if err != nil {
		return err
	}
	patch := client.MergeFrom(cj.DeepCopy())
	cj.Spec.Suspend = ptr.To(suspend)
	if err := r.c.Patch(ctx, cj, patch, client.FieldOwner(fieldOwner)); err != nil {
		return fmt.Errorf("setting suspend=%t on CronJob %s: %w", suspend, key.Name, err)
	}
	return nil
}

// waitNoBackup waits until the backup CronJob has no running Job.
func (r restorer) waitNoBackup(ctx context.Context, key types.NamespacedName) error {
	return r.until(ctx, "the running backup "+key.Name+" to finish", func() (bool, error) {
		cj := &batchv1.CronJob{}
		if err := r.c.Get(ctx, key, cj); apierrors.IsNotFound(err) {
			return true, nil
		} else if err != nil {
			return false, err
		}
		return len(cj.Status.Active) == 0, nil
	})
}

// scale sets the Deployment's replicas and returns the previous count.
func (r restorer) scale(ctx context.Context, key types.NamespacedName, replicas int32) (int32, error) {
	d := &appsv1.Deployment{}
	if err := r.c.Get(ctx, key, d); err != nil {
		return 0, fmt.Errorf("reading Deployment %s: %w", key.Name, err)
	}
	before := ptr.Deref(d.Spec.Replicas, 1)
	patch := client.MergeFrom(d.DeepCopy())
	d.Spec.Replicas = ptr.To(replicas)
	if err := r.c.Patch(ctx, d, patch, client.FieldOwner(fieldOwner)); err != nil {
		return 0, fmt.Errorf("scaling Deployment %s to %d: %w", key.Name, replicas, err)
	}
	return before, nil
}

// waitStopped waits until the Deployment has no pods (and so no database
// connections) left.
func (r restorer) waitStopped(ctx context.Context, key types.NamespacedName) error {
	return r.until(ctx, "the pods of Deployment "+key.Name+" to stop", func() (bool, error) {
		d := &appsv1.Deployment{}
		if err := r.c.Get(ctx, key, d); err != nil {
			return false, err
		}
		pods := &corev1.PodList{}
		if err := r.c.List(ctx, pods, client.InNamespace(key.Namespace), client.MatchingLabels(d.Spec.Selector.MatchLabels)); err != nil {
			return false, err
		}
		return d.Status.Replicas == 0 && len(pods.Items) == 0, nil
	})
}

// waitJob waits until the Job completes, or fails with an error.
func (r restorer) waitJob(ctx context.Context, key types.NamespacedName) error {
	return r.until(ctx, "Job "+key.Name, func() (bool, error) {
		job := &batchv1.Job{}
		if err := r.c.Get(ctx, key, job); err != nil {
			return false, err
		}
		for _, c := range job.Status.Conditions {
			if c.Status != corev1.ConditionTrue {
				continue
			}
			switch c.Type {
			case batchv1.JobComplete:
				return true, nil
			case batchv1.JobFailed:
				return false, fmt.Errorf("Job %s failed: %s", key.Name, c.Message)
			}
		}
		return false, nil
	})
}

// until polls done every r.poll until it is true, fails, or ctx ends.
func (r restorer) until(ctx context.Context, what string, done func() (bool, error)) error {
	tick := time.NewTicker(r.poll)
	defer tick.Stop()
	for {
		ok, err := done()
		if err != nil || ok {
			return err
		}
		select {
		case <-ctx.Done():
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				return fmt.Errorf("timed out waiting for %s", what)
			}
			return ctx.Err()
		case <-tick.C:
		}
	}
}
