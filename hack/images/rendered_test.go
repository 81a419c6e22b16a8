package main

import (
	"regexp"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

// object has the fields of the rendered objects (StatefulSet, CronJob,
// ConfigMap, ...) that the local images' tests read.
type object struct {
	Kind     string
	Metadata struct{ Name string }
	Data     map[string]string
	Spec     struct {
		Template    podTemplate
		JobTemplate struct {
			Spec struct{ Template podTemplate }
		} `json:"jobTemplate"`
	}
}

type podTemplate struct {
	Spec struct {
		SecurityContext struct {
			RunAsUser  *int64 `json:"runAsUser"`
			RunAsGroup *int64 `json:"runAsGroup"`
		} `json:"securityContext"`
		Containers []container
	}
}

type container struct {
	Name, Image   string
	Command, Args []string
	Env           []struct {
		Name, Value string
		ValueFrom   map[string]any `json:"valueFrom"`
	}
	StartupProbe *struct {
		Exec *struct{ Command []string }
	} `json:"startupProbe"`
}

// objects decodes a multi-document YAML stream.
func objects(t *testing.T, stream []byte) []object {
	t.Helper()
	var out []object
	for _, doc := range regexp.MustCompile(`(?m)^---\s*$`).Split(string(stream), -1) {
		if strings.TrimSpace(doc) == "" {
			continue
		}
		var o object
		if err := yaml.Unmarshal([]byte(doc), &o); err != nil {
			t.Fatalf("%v in:\n%s", err, doc)
		}
		out = append(out, o)
	}
	return out
}

// postgresStatefulSet is the first rendered database StatefulSet running
// the official postgres image, and its init ConfigMap.
func postgresStatefulSet(t *testing.T) (sts object, c container, init object) {
	t.Helper()
	objs := objects(t, renderSamples(t))
	byName := map[string]object{}
	for _, o := range objs {
		byName[o.Kind+"/"+o.Metadata.Name] = o
	}
	for _, o := range objs {
		if o.Kind != "StatefulSet" {
			continue
		}
		for _, c := range o.Spec.Template.Spec.Containers {
			if strings.HasPrefix(c.Image, "postgres:") {
				cm, ok := byName["ConfigMap/"+o.Metadata.Name+"-init"]
				if !ok {
					t.Fatalf("no ConfigMap %s-init for %s", o.Metadata.Name, o.Metadata.Name)
				}
				return o, c, cm
			}
		}
	}
	t.Fatal("the samples render no StatefulSet with a postgres: image")
	return
}

// postgresPods are the rendered containers that run the database's image
// (the StatefulSet and the backup CronJobs).
func postgresPods(t *testing.T) map[string]container {
	t.Helper()
	out := map[string]container{}
	for _, o := range objects(t, renderSamples(t)) {
		for _, c := range append(o.Spec.Template.Spec.Containers, o.Spec.JobTemplate.Spec.Template.Spec.Containers...) {
			if strings.HasPrefix(c.Image, "postgres:") {
				out[o.Kind+"/"+o.Metadata.Name+"/"+c.Name] = c
			}
		}
	}
	return out
}
