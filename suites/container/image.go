package container

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"debug/elf"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	dclient "github.com/moby/moby/client"
	"github.com/testcontainers/testcontainers-go"

	"github.com/zcc-harness/zcc/suites"
	"github.com/zcc-harness/zcc/suites/container/internal/engine"
)

// Dockerfile is the Dockerfile of zcc's image; the repository's Dockerfile
// (what `make image` builds) is the same text, which a test checks. Its
// context holds the static binary at bin/zcc.
const Dockerfile = `# zcc's reference controller as a container image. It needs no registry:
# the base is scratch and the only file is the static zcc binary that
# ` + "`make build`" + ` leaves in bin/ (CGO_ENABLED=0). Build it with ` + "`make image`" + `.
# Written for Docker's classic builder (no BuildKit features), which is
# what testcontainers-go drives.
FROM scratch
COPY bin/zcc /zcc
# Lets ` + "`make image`" + ` remove earlier builds once their tags have moved on.
LABEL dev.zcc-harness.image="controller"
# Zeek's variables configure the controller as they configure Zeek's: it
# listens on every interface of the container, on 2150/tcp. The request
# timeout and sweep interval come from ZCC_REQUEST_TIMEOUT and
# ZCC_SWEEP_INTERVAL when set (Zeek's defaults, 10 s each, otherwise).
ENV ZEEK_CONTROLLER_ADDR=0.0.0.0 \
    ZEEK_CONTROLLER_PORT=2150/tcp
EXPOSE 2150/tcp
# No account database in scratch, so a numeric uid: nobody.
USER 65534:65534
ENTRYPOINT ["/zcc", "controller"]
`

// SelfImage is the tag of the image the target builds from the running
// zcc binary when no image is configured.
const SelfImage = "zcc:conform"

// Bounds of image work done outside any spec (the target's setup).
const (
	buildTimeout = 5 * time.Minute
	pullTimeout  = 5 * time.Minute
)

// resolveImage makes the configured image available and names it: a
// configured image is checked (and pulled if missing), a build context is
// built, and otherwise zcc's image is built from this very binary. Each
// build happens once per process.
func resolveImage(cc suites.ContainerConfig) (string, error) {
	switch {
	case cc.Image != "":
		ctx, cancel := context.WithTimeout(context.Background(), pullTimeout)
		defer cancel()
		return cc.Image, ensureImage(ctx, cc.Image)
	case cc.Build != "":
		dir, err := filepath.Abs(cc.Build)
		if err != nil {
			return "", fmt.Errorf("target.container.build %q: %w", cc.Build, err)
		}
		sum := sha256.Sum256([]byte(dir))
		tag := "zcc-conform-build:" + hex.EncodeToString(sum[:6])
		return tag, buildOnce(dir, func(ctx context.Context) error { return buildContextDir(ctx, dir, tag) })
	default:
		exe, err := os.Executable()
		if err != nil {
			return "", fmt.Errorf("find this program's binary to build zcc's image: %w", err)
		}
		if err := checkStatic(exe); err != nil {
			return "", fmt.Errorf("no image configured, and this binary cannot be zcc's image (%w); run `make image` and pass --image zcc:dev, or set target.container.image", err)
		}
		return SelfImage, buildOnce(exe, func(ctx context.Context) error { return BuildImage(ctx, exe, SelfImage) })
	}
}

var builds struct {
	sync.Mutex
	m map[string]func() error
}

// buildOnce runs build once per process for key and returns its result to
// every caller.
func buildOnce(key string, build func(ctx context.Context) error) error {
	builds.Lock()
	if builds.m == nil {
		builds.m = map[string]func() error{}
	}
	f, ok := builds.m[key]
	if !ok {
		f = sync.OnceValue(func() error {
			ctx, cancel := context.WithTimeout(context.Background(), buildTimeout)
			defer cancel()
			return build(ctx)
		})
		builds.m[key] = f
	}
	builds.Unlock()
	return f()
}

// checkStatic reports why the file at path cannot run FROM scratch: it
// must be a Linux ELF executable without a dynamic loader.
func checkStatic(path string) error {
	f, err := elf.Open(path)
	if err != nil {
		return fmt.Errorf("%s is not a Linux ELF executable: %w", path, err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return fmt.Errorf("%s is dynamically linked (build it with CGO_ENABLED=0)", path)
		}
	}
	return nil
}

// BuildImage builds zcc's image, tagged image, from a static zcc binary
// with the Docker engine's classic builder; nothing is pulled. If the tag
// named another image before, that image is removed when nothing uses it.
func BuildImage(ctx context.Context, binary, image string) error {
	if err := checkStatic(binary); err != nil {
		return err
	}
	archive, err := selfContext(binary)
	if err != nil {
		return err
	}
	return build(ctx, testcontainers.FromDockerfile{ContextArchive: archive}, image)
}

// selfContext is the build context of zcc's image as a tar stream:
// Dockerfile and bin/zcc.
func selfContext(binary string) (io.ReadSeeker, error) {
	bin, err := os.ReadFile(binary)
	if err != nil {
		return nil, fmt.Errorf("read the zcc binary: %w", err)
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, f := range []struct {
		name string
		mode int64
		data []byte
	}{
		{"Dockerfile", 0o644, []byte(Dockerfile)},
		{"bin/zcc", 0o755, bin},
	} {
		if err := tw.WriteHeader(&tar.Header{Name: f.name, Mode: f.mode, Size: int64(len(f.data)), Typeflag: tar.TypeReg}); err != nil {
			return nil, fmt.Errorf("build context %s: %w", f.name, err)
		}
		if _, err := tw.Write(f.data); err != nil {
			return nil, fmt.Errorf("build context %s: %w", f.name, err)
		}
	}
	if err := tw.Close(); err != nil {
		return nil, fmt.Errorf("build context: %w", err)
	}
	return bytes.NewReader(buf.Bytes()), nil
}

// buildContextDir builds the image of a directory with a Dockerfile.
func buildContextDir(ctx context.Context, dir, image string) error {
	if _, err := os.Stat(filepath.Join(dir, "Dockerfile")); err != nil {
		return fmt.Errorf("target.container.build %s: %w", dir, err)
	}
	return build(ctx, testcontainers.FromDockerfile{Context: dir}, image)
}

func build(ctx context.Context, df testcontainers.FromDockerfile, image string) error {
	repo, tag := splitImage(image)
	var log bytes.Buffer
	df.Repo, df.Tag, df.KeepImage, df.BuildLogWriter = repo, tag, true, &log
	p, err := testcontainers.NewDockerProvider(testcontainers.WithLogger(engine.Logger))
	if err != nil {
		return fmt.Errorf("build image %s: %w", image, err)
	}
	defer p.Close()
	old := imageID(ctx, image)
	if _, err := p.BuildImage(ctx, &testcontainers.ContainerRequest{FromDockerfile: df}); err != nil {
		return fmt.Errorf("build image %s: %w\n%s", image, err, log.String())
	}
	if now := imageID(ctx, image); old != "" && now != old {
		if cli, err := engine.Client(); err == nil {
			// Fails harmlessly while a container still uses it.
			_, _ = cli.ImageRemove(ctx, old, dclient.ImageRemoveOptions{PruneChildren: true})
		}
	}
	return nil
}

// imageID is the ID the reference names now, or "".
func imageID(ctx context.Context, ref string) string {
	cli, err := engine.Client()
	if err != nil {
		return ""
	}
	res, err := cli.ImageInspect(ctx, ref)
	if err != nil {
		return ""
	}
	return res.ID
}

// ensureImage checks that the engine has image, pulling it if not (which
// needs its registry).
func ensureImage(ctx context.Context, image string) error {
	cli, err := engine.Client()
	if err != nil {
		return err
	}
	if _, err := cli.ImageInspect(ctx, image); err == nil {
		return nil
	} else if !cerrdefs.IsNotFound(err) {
		return fmt.Errorf("inspect image %s: %w", image, err)
	}
	rc, err := cli.ImagePull(ctx, image, dclient.ImagePullOptions{})
	if err != nil {
		return fmt.Errorf("image %s is not on this Docker engine and pulling it failed (load it with `docker load`, or build it): %w", image, err)
	}
	if err := rc.Wait(ctx); err != nil {
		return fmt.Errorf("pull image %s: %w", image, err)
	}
	if _, err := cli.ImageInspect(ctx, image); err != nil {
		return fmt.Errorf("image %s still missing after the pull: %w", image, err)
	}
	return nil
}

// splitImage splits "repo:tag" (the repo may have a registry port) into
// its parts; no tag means "latest".
func splitImage(image string) (repo, tag string) {
	i := len(image) - 1
	for ; i >= 0; i-- {
		switch image[i] {
		case ':':
			return image[:i], image[i+1:]
		case '/':
			return image, "latest"
		}
	}
	return image, "latest"
}
