using System.Runtime.InteropServices;

namespace WhaleWall.Host.Sandbox;

/// <summary>Landlock (Linux >= 5.13) through raw syscalls: a ruleset handling every file-system
/// right the running kernel knows, path-beneath rules for what the daemon needs, then
/// landlock_restrict_self. The restriction covers the calling thread and everything it later
/// creates or executes (not threads that exist already): see <see cref="SandboxEntry"/> for why
/// the daemon re-executes itself after calling this.</summary>
public static class Landlock
{
    // include/uapi/linux/landlock.h
    public const ulong Execute = 1UL << 0, WriteFile = 1UL << 1, ReadFile = 1UL << 2, ReadDir = 1UL << 3,
        RemoveDir = 1UL << 4, RemoveFile = 1UL << 5, MakeChar = 1UL << 6, MakeDir = 1UL << 7, MakeReg = 1UL << 8,
        MakeSock = 1UL << 9, MakeFifo = 1UL << 10, MakeBlock = 1UL << 11, MakeSym = 1UL << 12,
        Refer = 1UL << 13, Truncate = 1UL << 14, IoctlDev = 1UL << 15;

    public const ulong ReadOnly = Execute | ReadFile | ReadDir;
    /// <summary>Read and write, not execute: nothing the daemon can write can be run.</summary>
    public const ulong ReadWrite = ReadFile | ReadDir | WriteFile | RemoveDir | RemoveFile | MakeDir | MakeReg | MakeSock | MakeSym | Truncate | Refer;

    private const ulong ScopeAbstractUnixSocket = 1UL << 0, ScopeSignal = 1UL << 1;
    private const uint CreateRulesetVersion = 1U << 0;
    private const int RulePathBeneath = 1;
    private const int OPath = 0x200000, OCloexec = 0x80000;

    private static long SysCreateRuleset => RuntimeInformation.ProcessArchitecture switch
    {
        Architecture.X64 or Architecture.Arm64 => 444,
        _ => throw new PlatformNotSupportedException("landlock syscall numbers known for x64 and arm64 only"),
    };

    [StructLayout(LayoutKind.Sequential)]
    private struct RulesetAttr { public ulong HandledAccessFs; public ulong HandledAccessNet; public ulong Scoped; }

    [StructLayout(LayoutKind.Sequential, Pack = 1)]
    private struct PathBeneathAttr { public ulong AllowedAccess; public int ParentFd; }

    [DllImport("libc", SetLastError = true)] private static extern long syscall(long number, IntPtr a1, UIntPtr a2, uint a3);
    [DllImport("libc", SetLastError = true)] private static extern long syscall(long number, int fd, int type, ref PathBeneathAttr attr, uint flags);
    [DllImport("libc", SetLastError = true)] private static extern long syscall(long number, int fd, uint flags);
    [DllImport("libc", SetLastError = true)] private static extern unsafe long syscall(long number, RulesetAttr* attr, UIntPtr size, uint flags);
    [DllImport("libc", SetLastError = true, CharSet = CharSet.Ansi)] private static extern int open(string path, int flags);
    [DllImport("libc")] private static extern int close(int fd);

    /// <summary>The landlock ABI version of the running kernel, or 0 when landlock is absent
    /// (not built in, not in the LSM list, or blocked by a seccomp profile such as an old
    /// container runtime's).</summary>
    public static int AbiVersion()
    {
        var v = syscall(SysCreateRuleset, IntPtr.Zero, UIntPtr.Zero, CreateRulesetVersion);
        return v < 0 ? 0 : (int)v;
    }

    /// <summary>Every file-system right the given ABI knows.</summary>
    public static ulong HandledFs(int abi)
    {
        var all = (1UL << 13) - 1;          // ABI 1: execute .. make_sym
        if (abi >= 2) all |= Refer;
        if (abi >= 3) all |= Truncate;
        if (abi >= 5) all |= IoctlDev;
        return all;
    }

    /// <summary>Restricts the calling thread (and what it creates or executes afterwards) to
    /// <paramref name="rules"/> (path -> allowed rights). Paths that do not exist are skipped
    /// and returned. Throws when the kernel rejects the ruleset.</summary>
    internal static unsafe IReadOnlyList<string> RestrictSelf(int abi, IReadOnlyList<(string Path, ulong Access)> rules)
    {
        var handled = HandledFs(abi);
        var attr = new RulesetAttr { HandledAccessFs = handled };
        // ABI 6: a sandboxed process may not signal or reach abstract unix sockets of processes
        // outside its domain (the daemon needs neither)
        if (abi >= 6) attr.Scoped = ScopeAbstractUnixSocket | ScopeSignal;
        // older kernels reject a struct larger than they know: pass the size of their version
        var size = abi >= 6 ? 24 : abi >= 4 ? 16 : 8;
        var rulesetFd = (int)syscall(SysCreateRuleset, &attr, (UIntPtr)size, 0);
        if (rulesetFd < 0) throw new IOException($"landlock_create_ruleset: errno {Marshal.GetLastPInvokeError()}");
        var skipped = new List<string>();
        try
        {
            foreach (var (path, access) in rules)
            {
                var fd = open(path, OPath | OCloexec);
                if (fd < 0) { skipped.Add(path); continue; }
                try
                {
                    // rights that make sense only on directories are refused on files
                    var allowed = access & handled;
                    if (!Directory.Exists(path)) allowed &= Execute | WriteFile | ReadFile | Truncate | IoctlDev;
                    var beneath = new PathBeneathAttr { AllowedAccess = allowed, ParentFd = fd };
                    if (syscall(SysCreateRuleset + 1, rulesetFd, RulePathBeneath, ref beneath, 0) < 0)
                        throw new IOException($"landlock_add_rule {path}: errno {Marshal.GetLastPInvokeError()}");
                }
                finally { close(fd); }
            }
            if (Prctl.SetNoNewPrivs() != 0)
                throw new IOException($"prctl(PR_SET_NO_NEW_PRIVS): errno {Marshal.GetLastPInvokeError()}");
            if (syscall(SysCreateRuleset + 2, rulesetFd, 0) < 0)
                throw new IOException($"landlock_restrict_self: errno {Marshal.GetLastPInvokeError()}");
        }
        finally { close(rulesetFd); }
        return skipped;
    }
}

internal static class Prctl
{
    private const int PR_SET_NO_NEW_PRIVS = 38;
    [DllImport("libc", SetLastError = true)] private static extern int prctl(int option, ulong a2, ulong a3, ulong a4, ulong a5);
    public static int SetNoNewPrivs() => prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
}
