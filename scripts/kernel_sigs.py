#!/usr/bin/env python3
"""scripts/kernel_sigs.py: has a change to the CUDA sources changed the machine code?

  python3 scripts/kernel_sigs.py A.cubin              per kernel: SASS instructions, code hash
  python3 scripts/kernel_sigs.py A.cubin B.cubin      per kernel: same, or how many instructions differ
  python3 scripts/kernel_sigs.py --against REV        engine/*.cu of git revision REV against the
                                                      working tree, compiled here with the Makefile's
                                                      flags; also ptxas's registers, stack and spills

For a refactor that must not change a kernel (a step moved into a __forceinline__
helper): every kernel's code is then byte-identical.  Reads the cubins' ELF
sections itself (each kernel is a .text.<name> section; sm_90 instructions are
16 bytes), so it needs neither cuobjdump nor nvdisasm.  Needs nvcc for
--against; exits 1 when a kernel differs or is missing on one side."""
import hashlib, os, re, struct, subprocess, sys, tempfile

NVFLAGS = os.environ.get("NVFLAGS", "-O3 -gencode=arch=compute_90a,code=sm_90a -lineinfo").split()


def kernels(path):
    """{kernel name: its code} from the cubin's .text.<name> sections."""
    d = open(path, "rb").read()
    if d[:4] != b"\x7fELF" or d[4] != 2:
        sys.exit(f"{path}: not a 64-bit ELF cubin")
    shoff, = struct.unpack_from("<Q", d, 0x28)
    shentsize, shnum, shstrndx = struct.unpack_from("<HHH", d, 0x3A)
    secs = [struct.unpack_from("<IIQQQQ", d, shoff + i * shentsize) for i in range(shnum)]
    stroff = secs[shstrndx][4]
    out = {}
    for name, _typ, _flags, _addr, off, size in secs:
        n = d[stroff + name:d.index(b"\0", stroff + name)].decode()
        if n.startswith(".text."):
            out[n[6:]] = d[off:off + size]
    return out


def compare(a, b, label_a="before", label_b="after"):
    """Prints one line per kernel; returns the number that differ or are missing."""
    bad = 0
    for name in sorted(set(a) | set(b)):
        if name not in a or name not in b:
            print(f"{name}: only {label_a if name in a else label_b}")
            bad += 1
            continue
        x, y = a[name], b[name]
        if x == y:
            print(f"{name}: {len(x) // 16} instructions, identical")
            continue
        diff = sum(x[i:i + 16] != y[i:i + 16] for i in range(0, min(len(x), len(y)), 16))
        print(f"{name}: {len(x) // 16} -> {len(y) // 16} instructions, {diff} differ")
        bad += 1
    return bad


def build(tree, cu, out):
    """Compiles tree/cu to out (a cubin); returns ptxas's per-kernel lines."""
    r = subprocess.run(["nvcc", *NVFLAGS, "-I.", "-cubin", cu, "-o", out, "-Xptxas", "-v"],
                       cwd=tree, capture_output=True, text=True)
    if r.returncode:
        sys.exit(f"nvcc {cu} in {tree}:\n{r.stderr}")
    keep = [re.sub(r", [0-9.]+ ms", "", l) for l in r.stderr.splitlines()
            if "Compiling entry" in l or "registers" in l or "spill" in l]
    return keep


def against(rev):
    with tempfile.TemporaryDirectory() as tmp:
        old = os.path.join(tmp, "old")
        os.makedirs(old)
        arch = subprocess.run(["git", "archive", rev], capture_output=True, check=True).stdout
        subprocess.run(["tar", "-x", "-C", old], input=arch, check=True)
        bad = 0
        for cu in sorted(f for f in os.listdir("engine") if f.endswith(".cu")):
            path = os.path.join("engine", cu)
            if not os.path.exists(os.path.join(old, path)):
                print(f"== {path}: new since {rev}")
                continue
            a, b = os.path.join(tmp, cu + ".old.cubin"), os.path.join(tmp, cu + ".new.cubin")
            ra, rb = build(old, path, a), build(".", path, b)
            print(f"== {path}")
            bad += compare(kernels(a), kernels(b), rev, "working tree")
            if ra != rb:
                print(f"{path}: ptxas's registers, stack or spills differ")
                bad += 1
        print(f"{bad} kernels differ" if bad else "every kernel's code identical, registers and spills unchanged")
        return bad


def main(argv):
    if len(argv) == 2 and argv[0] == "--against":
        return 1 if against(argv[1]) else 0
    if len(argv) == 1:
        for name, code in sorted(kernels(argv[0]).items()):
            print(f"{name} {len(code) // 16} {hashlib.sha256(code).hexdigest()[:16]}")
        return 0
    if len(argv) == 2:
        return 1 if compare(kernels(argv[0]), kernels(argv[1])) else 0
    sys.exit(__doc__)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
