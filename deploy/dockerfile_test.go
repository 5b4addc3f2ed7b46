package deploy_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	"sigs.k8s.io/yaml"
)

// instruction is one Dockerfile instruction with continuations joined.
type instruction struct {
	cmd, args string
	line      int
}

// stage is one FROM and what follows it.
type stage struct {
	from         string // image
	name         string // "AS name", "" when unnamed
	instructions []instruction
}

// parseDockerfile reads the subset of Dockerfile syntax this repository
// uses: comments, instructions, backslash continuations. There is no
// Docker engine on the CI machines, so the image cannot be built here;
// this checks the shape instead.
func parseDockerfile(t *testing.T, data string) []stage {
	t.Helper()
	var stages []stage
	var cur strings.Builder
	start := 0
	for i, raw := range strings.Split(data, "\n") {
		line := strings.TrimSpace(raw)
		if cur.Len() == 0 && (line == "" || strings.HasPrefix(line, "#")) {
			continue
		}
		if cur.Len() == 0 {
			start = i + 1
		}
		if cont, ok := strings.CutSuffix(line, `\`); ok {
			cur.WriteString(cont + " ")
			continue
		}
		cur.WriteString(line)
		cmd, args, _ := strings.Cut(cur.String(), " ")
		cur.Reset()
		in := instruction{cmd: strings.ToUpper(cmd), args: strings.TrimSpace(args), line: start}
		if in.cmd == "FROM" {
			f := strings.Fields(in.args)
			st := stage{from: f[0]}
			if len(f) == 3 && strings.EqualFold(f[1], "AS") {
				st.name = f[2]
			}
			stages = append(stages, st)
			continue
		}
		if len(stages) == 0 {
			t.Fatalf("Dockerfile:%d: %s before the first FROM", in.line, in.cmd)
		}
		stages[len(stages)-1].instructions = append(stages[len(stages)-1].instructions, in)
	}
	return stages
}

func (s stage) last(cmd string) (instruction, bool) {
	var found instruction
	ok := false
	for _, in := range s.instructions {
		if in.cmd == cmd {
			found, ok = in, true
		}
	}
	return found, ok
}

func TestDockerfile(t *testing.T) {
	data, err := os.ReadFile("Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	stages := parseDockerfile(t, string(data))
	if len(stages) < 2 {
		t.Fatalf("%d stages, want a build stage and a runtime stage", len(stages))
	}
	build, final := stages[0], stages[len(stages)-1]

	t.Run("build stage", func(t *testing.T) {
		// The builder's Go must be the go.mod's language version.
		gomod, err := os.ReadFile("../go.mod")
		if err != nil {
			t.Fatal(err)
		}
		goVersion := regexp.MustCompile(`(?m)^go (\d+\.\d+)`).FindSubmatch(gomod)
		if goVersion == nil {
			t.Fatal("no go directive in go.mod")
		}
		if want := "golang:" + string(goVersion[1]); !strings.HasPrefix(build.from, want) {
			t.Errorf("build stage FROM %s, want %s (go.mod says go %s)", build.from, want, goVersion[1])
		}
		var goBuild string
		for _, in := range build.instructions {
			if in.cmd == "RUN" && strings.Contains(in.args, "go build") {
				goBuild = in.args
			}
		}
		for _, want := range []string{"CGO_ENABLED=0", "-trimpath", "./server/cmd/redirectd"} {
			if !strings.Contains(goBuild, want) {
				t.Errorf("go build step %q lacks %s", goBuild, want)
			}
		}
		if fi, err := os.Stat(filepath.Join("..", "server", "cmd", "redirectd")); err != nil || !fi.IsDir() {
			t.Errorf("the Dockerfile builds ./server/cmd/redirectd, which does not exist: %v", err)
		}
	})

	t.Run("runtime stage", func(t *testing.T) {
		if !strings.HasPrefix(final.from, "gcr.io/distroless/static") && final.from != "scratch" {
			t.Errorf("runtime image %s, want distroless/static or scratch", final.from)
		}
		cp, ok := final.last("COPY")
		if !ok || !strings.Contains(cp.args, "--from="+build.name) || build.name == "" {
			t.Fatalf("runtime stage does not COPY from the named build stage %q", build.name)
		}
		f := strings.Fields(cp.args)
		binary := f[len(f)-1]

		user, ok := final.last("USER")
		if !ok {
			t.Fatal("runtime stage has no USER: it would run as root")
		}
		uid, _, _ := strings.Cut(user.args, ":")
		if uid == "0" || uid == "root" || !regexp.MustCompile(`^[0-9]+$`).MatchString(uid) {
			t.Errorf("USER %s: want a numeric non-root uid (Kubernetes runAsNonRoot can only verify a number)", user.args)
		}
		checkKubernetesUser(t, uid)

		ep, ok := final.last("ENTRYPOINT")
		if !ok {
			t.Fatal("no ENTRYPOINT")
		}
		var argv []string
		if err := json.Unmarshal([]byte(ep.args), &argv); err != nil || len(argv) == 0 {
			t.Fatalf("ENTRYPOINT %s: want exec form [\"/path/redirectd\"] so SIGTERM reaches redirectd, not a shell: %v", ep.args, err)
		}
		if argv[0] != binary || filepath.Base(binary) != "redirectd" {
			t.Errorf("ENTRYPOINT runs %s, the binary is copied to %s", argv[0], binary)
		}
	})
}

// checkKubernetesUser: the Deployment runs the image as the image's user.
func checkKubernetesUser(t *testing.T, uid string) {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("kubernetes", "deployment.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var d appsv1.Deployment
	if err := yaml.Unmarshal(data, &d); err != nil {
		t.Fatal(err)
	}
	sc := d.Spec.Template.Spec.SecurityContext
	if sc == nil || sc.RunAsUser == nil || uid != strconv.FormatInt(*sc.RunAsUser, 10) {
		t.Errorf("kubernetes/deployment.yaml runAsUser differs from the image's USER %s", uid)
	}
}
