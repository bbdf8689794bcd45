using System.Runtime.InteropServices;

namespace WhaleWall.Host.Sandbox;

/// <summary>A seccomp filter built with libseccomp (Debian `libseccomp2`): everything is allowed
/// except system calls a firewall daemon never makes, which fail with EPERM. The filter is
/// synchronised to every thread of the process (SCMP_FLTATR_CTL_TSYNC) and inherited across
/// execve.</summary>
internal static class Seccomp
{
    private const string Lib = "libseccomp.so.2";
    private const uint ActAllow = 0x7fff0000;
    private const uint ActErrnoBase = 0x00050000;
    private const int FltAtrCtlTsync = 4;
    public const int EPERM = 1;

    /// <summary>Denied: debugging other processes, mounts and namespaces (the daemon never
    /// switches namespace), kernel modules and kexec, reboot/swap, BPF and perf, keyrings,
    /// clocks, raw I/O ports, host and domain names, handle-based opens.</summary>
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
    ];

    [DllImport(Lib)] private static extern IntPtr seccomp_init(uint defAction);
    [DllImport(Lib)] private static extern void seccomp_release(IntPtr ctx);
    [DllImport(Lib)] private static extern int seccomp_attr_set(IntPtr ctx, int attr, uint value);
    [DllImport(Lib, CharSet = CharSet.Ansi)] private static extern int seccomp_syscall_resolve_name(string name);
    [DllImport(Lib)] private static extern int seccomp_rule_add_array(IntPtr ctx, uint action, int syscall, uint argCount, IntPtr args);
    [DllImport(Lib)] private static extern int seccomp_load(IntPtr ctx);

    public static bool Available()
    {
        try { return NativeLibrary.TryLoad(Lib, out _); }
        catch { return false; }
    }

    /// <summary>Loads the filter on every thread. Returns the denied names this libseccomp does
    /// not know (older versions), which stay allowed.</summary>
    public static IReadOnlyList<string> Load()
    {
        var ctx = seccomp_init(ActAllow);
        if (ctx == IntPtr.Zero) throw new IOException("seccomp_init failed");
        var unknown = new List<string>();
        try
        {
            Check(seccomp_attr_set(ctx, FltAtrCtlTsync, 1), "seccomp_attr_set(TSYNC)");
            foreach (var name in Denied)
            {
                var nr = seccomp_syscall_resolve_name(name);
                if (nr < 0) { unknown.Add(name); continue; }
                Check(seccomp_rule_add_array(ctx, ActErrnoBase | EPERM, nr, 0, IntPtr.Zero), $"seccomp_rule_add({name})");
            }
            Check(seccomp_load(ctx), "seccomp_load");
        }
        finally { seccomp_release(ctx); }
        return unknown;
    }

    private static void Check(int rc, string what)
    {
        if (rc < 0) throw new IOException($"{what}: {rc} ({Marshal.GetPInvokeErrorMessage(-rc)})");
    }
}
