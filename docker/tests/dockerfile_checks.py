"""Checks of docker/Dockerfile for check_docker.py: the cargo-chef stages, the runtime image,
the pins (base images by digest, the Rust tag equal to rust-toolchain.toml's channel,
cargo-chef by exact version) and the BuildKit cache mounts.

Every check takes the Inputs of check_docker.py and returns a list of problems (empty = pass).
"""

import json
import re

DIGEST = re.compile(r"@sha256:[0-9a-f]{64}$")
RUNTIME_IMAGE = "gcr.io/distroless/cc-debian12:nonroot"
REGISTRY_DIR = "/usr/local/cargo/registry"


def dockerfile_instructions(text):
    """[(INSTRUCTION, args)] with line continuations joined and comments dropped."""
    out, buf = [], ""
    for raw in (text or "").splitlines():
        line = raw.strip()
        if not buf and (not line or line.startswith("#")):
            continue
        if line.endswith("\\"):
            buf += line[:-1] + " "
            continue
        buf += line
        parts = buf.split(None, 1)
        out.append((parts[0].upper(), parts[1] if len(parts) > 1 else ""))
        buf = ""
    return out


def dockerfile_stages(text):
    """[(image, stage name, [(instr, args)])], with global ARG defaults substituted in FROM."""
    args, stages = {}, []
    for instr, rest in dockerfile_instructions(text):
        if instr == "ARG" and not stages:
            k, _, v = rest.partition("=")
            args[k.strip()] = v.strip()
            continue
        if instr == "FROM":
            words = rest.split()
            words = [w for w in words if not w.startswith("--platform")]
            image = re.sub(r"\$\{?(\w+)\}?", lambda m: args.get(m.group(1), m.group(0)), words[0])
            name = words[2] if len(words) >= 3 and words[1].upper() == "AS" else None
            stages.append((image, name, []))
        elif stages:
            stages[-1][2].append((instr, rest))
    return stages


def global_args(text):
    """{name: default} of the ARGs before the first FROM."""
    out = {}
    for instr, rest in dockerfile_instructions(text):
        if instr == "FROM":
            break
        if instr == "ARG":
            k, _, v = rest.partition("=")
            out[k.strip()] = v.strip().strip('"')
    return out


def without_digest(image):
    return DIGEST.sub("", image)


def toolchain_channel(text):
    """The `channel` of rust-toolchain.toml, or None."""
    m = re.search(r'^\s*channel\s*=\s*"([^"]+)"', text or "", re.M)
    return m.group(1) if m else None


def stage_runs(stages, stage):
    for _, name, body in stages:
        if name == stage:
            return [a for i, a in body if i == "RUN"]
    return []


def cache_mounts(run):
    """{target: options} of the `--mount=type=cache,...` flags of one RUN."""
    mounts = {}
    for flag in re.findall(r"--mount=(\S+)", run):
        opts = dict(kv.split("=", 1) if "=" in kv else (kv, "") for kv in flag.split(","))
        if opts.get("type") == "cache" and opts.get("target"):
            mounts[opts["target"]] = opts
    return mounts


def check_dockerfile(inp):
    """cargo-chef stages, -p ${SERVICE}, distroless non-root runtime, exec-form entrypoint."""
    if inp.dockerfile is None:
        return ["docker/Dockerfile is missing"]
    stages = dockerfile_stages(inp.dockerfile)
    names = {name: (image, body) for image, name, body in stages if name}
    probs = []
    if not re.search(r"^\s*ARG\s+SERVICE\b", inp.dockerfile, re.M):
        probs.append("Dockerfile has no `ARG SERVICE`")
    for stage in ("planner", "cacher", "builder"):
        if stage not in names:
            probs.append(f"Dockerfile has no `{stage}` stage")

    def runs(stage):
        return " ".join(stage_runs(stages, stage))

    sp = r"-p\s+\"?\$\{?SERVICE\}?\"?"
    if "cargo chef prepare" not in runs("planner"):
        probs.append("the planner stage should run `cargo chef prepare`")
    cook = runs("cacher")
    if not (re.search(r"cargo chef cook\b", cook) and "--release" in cook):
        probs.append("the cacher stage should run `cargo chef cook --release`")
    build = runs("builder")
    if not (re.search(r"cargo build\b", build) and "--release" in build and re.search(sp, build)):
        probs.append("the builder stage should run `cargo build --release -p ${SERVICE}`")
    if not stages:
        return probs + ["Dockerfile has no FROM"]
    image, _, body = stages[-1]
    if without_digest(image) != RUNTIME_IMAGE:
        probs.append(f"the runtime stage should be {RUNTIME_IMAGE}, got {image}")
    copies = " ".join(a for i, a in body if i == "COPY")
    for dest in ("/usr/local/bin/${SERVICE}", "/usr/local/bin/service"):
        if dest not in copies:
            probs.append(f"the runtime stage should COPY the binary to {dest}")
    entry = [a for i, a in body if i == "ENTRYPOINT"]
    try:
        if not entry or json.loads(entry[-1]) != ["/usr/local/bin/service"]:
            probs.append(f"ENTRYPOINT should be exec form [\"/usr/local/bin/service\"], got {entry}")
    except ValueError:
        probs.append(f"ENTRYPOINT must be exec form (JSON): distroless has no shell; got {entry}")
    users = [a.strip() for i, a in body if i == "USER"]
    if users and users[-1].split(":")[0] not in ("65532", "nonroot"):
        probs.append(f"the runtime should run as uid 65532 (nonroot), got USER {users[-1]}")
    if any(i == "HEALTHCHECK" for i, _ in body):
        probs.append("no HEALTHCHECK: distroless has no shell or curl to run one; probe GET /readyz from outside")
    return probs


def check_pins(inp):
    """Every external base image by tag and digest; the Rust tag is rust-toolchain.toml's
    channel; cargo-chef installed at an exact version with --locked."""
    stages = dockerfile_stages(inp.dockerfile or "")
    stage_names = {name for _, name, _ in stages if name}
    probs = []
    for image, name, _ in stages:
        if image in stage_names:
            continue
        if not DIGEST.search(image):
            probs.append(f"FROM {image} (stage {name}) is not pinned by digest: write image:tag@sha256:<digest>")
        elif ":" not in without_digest(image).rsplit("/", 1)[-1]:
            probs.append(f"FROM {image}: keep the tag beside the digest (people and the update bots read it)")
    channel = toolchain_channel(inp.toolchain)
    rust = [without_digest(i) for i, _, _ in stages if i.startswith("rust:")]
    if channel is None:
        probs.append("rust-toolchain.toml has no channel")
    elif rust != [f"rust:{channel}-bookworm"]:
        probs.append(f"the build stages should start FROM rust:{channel}-bookworm (rust-toolchain.toml), got {rust or 'none'}")
    args = global_args(inp.dockerfile)
    installs = " ".join(stage_runs(stages, "chef"))
    m = re.search(r"cargo install cargo-chef\b(.*)", installs)
    if not m:
        probs.append("the chef stage should `cargo install cargo-chef`")
    else:
        flags = re.sub(r"\$\{?(\w+)\}?", lambda v: args.get(v.group(1), v.group(0)), m.group(1))
        if not re.search(r"--version[ =]\"?=?\d+\.\d+\.\d+\"?", flags):
            probs.append(f"cargo-chef should be installed at an exact version (--version \"=X.Y.Z\"), got `{m.group(0)}`")
        if "--locked" not in flags:
            probs.append("cargo-chef should be installed with --locked")
    return probs


def check_cache_mounts(inp):
    """BuildKit cache mounts: the cargo registry wherever crates are downloaded, and the
    builder's target directory (then the binary must be copied out of the mount)."""
    stages = dockerfile_stages(inp.dockerfile or "")
    probs = []
    if not (inp.dockerfile or "").startswith("# syntax=docker/dockerfile:1"):
        probs.append("the first line should be `# syntax=docker/dockerfile:1` (RUN --mount needs BuildKit's frontend)")
    for stage in ("chef", "cacher", "builder"):
        runs = [r for r in stage_runs(stages, stage) if re.search(r"\bcargo (install|chef|build|fetch)\b", r)]
        if not runs:
            probs.append(f"the {stage} stage runs no cargo command")
        for run in runs:
            mounts = cache_mounts(run)
            if REGISTRY_DIR not in mounts:
                probs.append(f"{stage}: `{run[:60]}...` has no cache mount of {REGISTRY_DIR}")
    build = " ".join(stage_runs(stages, "builder"))
    mounts = cache_mounts(build)
    m = re.search(r"--target-dir[ =](\S+)", build)
    target_dir = m.group(1) if m else "/app/target"
    if target_dir not in mounts:
        probs.append(f"builder: no cache mount of its target directory {target_dir}")
    elif not re.search(rf"(cp|install)\b[^&]*{re.escape(target_dir)}/release/\$\{{?SERVICE\}}?\S*\s+\"?/out/", build):
        probs.append(f"builder: copy the binary out of the target cache mount {target_dir} (a mount is not part of the layer)")
    for opts in mounts.values():
        if opts.get("sharing") not in ("locked", "private"):
            probs.append(f"cache mount {opts.get('target')}: use sharing=locked (two cargo runs must not share a directory at once)")
    return probs

