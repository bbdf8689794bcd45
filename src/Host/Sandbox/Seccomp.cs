using System.Runtime.InteropServices;

namespace WhaleWall.Host.Sandbox;

/// <summary>Seccomp filters built with libseccomp (Debian `libseccomp2`): everything is allowed
/// except system calls a firewall daemon never makes. Each filter is synchronised to every
/// thread of the process (SCMP_FLTATR_CTL_TSYNC) and inherited across execve; filters stack,
/// the strictest answer wins. Two are loaded:
/// <list type="bullet">
/// <item>by the first stage, before it re-executes the process (<see cref="Load"/>): the
/// <see cref="Denied"/> calls, clone with a namespace flag, clone3 and io_uring;</item>
/// <item>by the second stage, once the re-exec is done (<see cref="LoadAfterStart"/>): execve
/// and execveat, so the daemon can never run another program, its own included.</item>
/// </list></summary>
internal static class Seccomp
{
    private const string Lib = "libseccomp.so.2";
    private const uint ActAllow = 0x7fff0000;
    private const uint ActErrnoBase = 0x00050000;
    private const int FltAtrCtlTsync = 4;
    private const int CmpMaskedEq = 7;   // enum scmp_compare: (arg & datum_a) == datum_b
    public const int EPERM = 1, ENOSYS = 38;

    /// <summary>Denied with EPERM: debugging other processes, mounts and namespaces (the daemon
    /// never switches namespace), kernel modules and kexec, reboot/swap, BPF and perf, keyrings,
    /// clocks, raw I/O ports, host and domain names, handle-based opens, io_uring (an
    /// asynchronous path around the system calls a filter sees; .NET does not use it).</summary>
    public static readonly string[] Denied =
    [
        "ptrace", "process_vm_readv", "process_vm_writev", "kcmp", "pidfd_getfd",
        "mount", "umount2", "pivot_root", "chroot", "move_mount", "open_tree", "fsopen", "fsmount", "fsconfig", "fspick", "mount_setattr",
        "setns", "unshare",
        "kexec_load", "kexec_file_load", "init_module", "finit_module", "delete_module",
        "reboot", "swapon", "swapoff", "acct", "quotactl", "quotactl_fd",
        "bpf", "perf_event_open", "userfaultfd",
        "keyctl", "add_key", "request_key",
        "settimeofday", "clock_settime", "clock_adjtime", "adjtimex",
        "iopl", "ioperm", "sethostname", "setdomainname", "vhangup", "syslog",
        "open_by_handle_at", "name_to_handle_at", "lookup_dcookie",
        "io_uring_setup", "io_uring_enter", "io_uring_register",
    ];

    /// <summary>clone with any of these flags (include/uapi/linux/sched.h) fails with EPERM; clone
    /// without them (threads) is allowed. CLONE_NEWTIME (0x80) is left out: clone() reads that bit
    /// as part of the exit signal, and only clone3 and unshare take it.</summary>
    public static readonly (string Name, ulong Flag)[] NamespaceCloneFlags =
    [
        ("CLONE_NEWNS", 0x00020000), ("CLONE_NEWCGROUP", 0x02000000), ("CLONE_NEWUTS", 0x04000000), ("CLONE_NEWIPC", 0x08000000),
        ("CLONE_NEWUSER", 0x10000000), ("CLONE_NEWPID", 0x20000000), ("CLONE_NEWNET", 0x40000000),
    ];

    /// <summary>Fail with ENOSYS, as on a kernel without them: clone3 passes its flags in a
    /// struct seccomp cannot read, and glibc (2.34+) answers ENOSYS from clone3 by creating the
    /// thread with clone, whose flags the filter checks.</summary>
    public static readonly string[] NotImplemented = ["clone3"];

    /// <summary>Denied with EPERM by the second stage, after the one re-exec the sandbox needs.</summary>
    public static readonly string[] DeniedAfterStart = ["execve", "execveat"];

    [StructLayout(LayoutKind.Sequential)]
    private struct ArgCmp { public uint Arg; public int Op; public ulong DatumA; public ulong DatumB; }

    [DllImport(Lib)] private static extern IntPtr seccomp_init(uint defAction);
    [DllImport(Lib)] private static extern void seccomp_release(IntPtr ctx);
    [DllImport(Lib)] private static extern int seccomp_attr_set(IntPtr ctx, int attr, uint value);
    [DllImport(Lib, CharSet = CharSet.Ansi)] private static extern int seccomp_syscall_resolve_name(string name);
    [DllImport(Lib)] private static extern int seccomp_rule_add_array(IntPtr ctx, uint action, int syscall, uint argCount, ArgCmp[]? args);
    [DllImport(Lib)] private static extern int seccomp_load(IntPtr ctx);

    public static bool Available()
    {
        try { return NativeLibrary.TryLoad(Lib, out _); }
        catch { return false; }
    }

    /// <summary>The first stage's filter, on every thread. Returns the names this libseccomp does
    /// not know (older versions), which stay allowed.</summary>
    public static IReadOnlyList<string> Load() => Build((ctx, unknown) =>
    {
        foreach (var name in Denied) Deny(ctx, name, EPERM, unknown);
        foreach (var name in NotImplemented) Deny(ctx, name, ENOSYS, unknown);
        // clone(flags, ...): flags are the first argument on x86_64 and arm64 (not on s390x,
        // where landlock's system call numbers are unknown here anyway)
        var clone = seccomp_syscall_resolve_name("clone");
        if (clone < 0) { unknown.Add("clone"); return; }
        foreach (var (name, flag) in NamespaceCloneFlags)
        {
            var cmp = new[] { new ArgCmp { Arg = 0, Op = CmpMaskedEq, DatumA = flag, DatumB = flag } };
            Check(seccomp_rule_add_array(ctx, ActErrnoBase | EPERM, clone, 1, cmp), $"seccomp_rule_add(clone & {name})");
        }
    });

    /// <summary>The second stage's filter (stacked on the first), on every thread.</summary>
    public static IReadOnlyList<string> LoadAfterStart() => Build((ctx, unknown) =>
    {
        foreach (var name in DeniedAfterStart) Deny(ctx, name, EPERM, unknown);
    });

    private static IReadOnlyList<string> Build(Action<IntPtr, List<string>> rules)
    {
        var ctx = seccomp_init(ActAllow);
        if (ctx == IntPtr.Zero) throw new IOException("seccomp_init failed");
        var unknown = new List<string>();
        try
        {
            Check(seccomp_attr_set(ctx, FltAtrCtlTsync, 1), "seccomp_attr_set(TSYNC)");
            rules(ctx, unknown);
            Check(seccomp_load(ctx), "seccomp_load");
        }
        finally { seccomp_release(ctx); }
        return unknown;
    }

    private static void Deny(IntPtr ctx, string name, int errno, List<string> unknown)
    {
        var nr = seccomp_syscall_resolve_name(name);
        if (nr < 0) { unknown.Add(name); return; }
        Check(seccomp_rule_add_array(ctx, ActErrnoBase | (uint)errno, nr, 0, null), $"seccomp_rule_add({name})");
    }

    private static void Check(int rc, string what)
    {
        if (rc < 0) throw new IOException($"{what}: {rc} ({Marshal.GetPInvokeErrorMessage(-rc)})");
    }
}
