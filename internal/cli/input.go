package cli

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"

	"github.com/shopplatform/shop-operator/internal/validate"
)

// document is one Shop read from a file.
type document struct {
	source string // file:index, for messages
	obj    *unstructured.Unstructured
}

// readShops reads every Shop from the files, in order: "-" is stdin, and a
// directory stands for its .yaml, .yml and .json files (as with kubectl -f).
// Files hold one or more YAML or JSON documents; documents of other kinds are
// skipped with a note on warn, so a whole rendered directory can be piped in.
func readShops(files []string, stdin io.Reader, warn io.Writer) ([]document, error) {
	if len(files) == 0 {
		return nil, errors.New("no input: name Shop files with -f (or -f - for stdin)")
	}
	files, err := expandDirs(files)
	if err != nil {
		return nil, err
	}
	gvk := validate.ForShop().GroupVersionKind()
	var docs []document
	for _, file := range files {
		name, r := file, stdin
		if file == "-" {
			name = "stdin"
		} else {
			f, err := os.Open(file)
			if err != nil {
				return nil, err
			}
			defer f.Close()
			r = f
		}
		reader := utilyaml.NewYAMLReader(bufio.NewReader(r))
		for i := 1; ; i++ {
			raw, err := reader.Read()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				return nil, fmt.Errorf("%s: %w", name, err)
			}
			source := fmt.Sprintf("%s (document %d)", name, i)
			if len(bytes.TrimSpace(stripComments(raw))) == 0 {
				continue
			}
			u := &unstructured.Unstructured{}
			if err := yaml.Unmarshal(raw, &u.Object); err != nil {
				return nil, fmt.Errorf("%s: %w", source, err)
			}
			if u.Object == nil {
				continue
			}
			if u.GroupVersionKind().GroupKind() != gvk.GroupKind() {
				fmt.Fprintf(warn, "skipping %s: not a Shop (apiVersion %q, kind %q)\n", source, u.GetAPIVersion(), u.GetKind())
				continue
			}
			docs = append(docs, document{source: source, obj: u})
		}
	}
	if len(docs) == 0 {
		return nil, fmt.Errorf("no Shop (apiVersion %s, kind %s) in %v", gvk.GroupVersion(), gvk.Kind, files)
	}
	return docs, nil
}

// expandDirs replaces each directory by its manifest files, sorted.
func expandDirs(files []string) ([]string, error) {
	var out []string
	for _, f := range files {
		if f == "-" {
			out = append(out, f)
			continue
		}
		info, err := os.Stat(f)
		if err != nil {
			return nil, err
		}
		if !info.IsDir() {
			out = append(out, f)
			continue
		}
		entries, err := os.ReadDir(f)
		if err != nil {
			return nil, err
		}
		for _, e := range entries { // ReadDir sorts by name
			switch filepath.Ext(e.Name()) {
			case ".yaml", ".yml", ".json":
				if !e.IsDir() {
					out = append(out, filepath.Join(f, e.Name()))
				}
			}
		}
	}
	return out, nil
}

// stripComments drops YAML comment lines, so a document of comments only
// counts as empty.
func stripComments(doc []byte) []byte {
	var out []byte
	for line := range bytes.Lines(doc) {
		if t := bytes.TrimSpace(line); len(t) > 0 && t[0] == '#' {
			continue
		}
		out = append(out, line...)
	}
	return out
}
