using System.Runtime.InteropServices;

namespace WhaleWall.Host.Sandbox;

/// <summary>Raw system calls whose errno shows whether the sandbox holds (libc, no managed
/// wrappers that would translate or retry). Each probe is built so that it cannot succeed even
/// without the sandbox (an empty file is not executable, the clone flags are invalid, the
/// io_uring arguments are bad): a sandbox that fails to deny shows up as the kernel's own
/// errno, never as a new process, namespace or ring.</summary>
public static class Probes
{
    public const int EPERM = 1, ENOENT = 2, ENOEXEC = 8, EBADF = 9, EACCES = 13, EFAULT = 14, EINVAL = 22, ENOSYS = 38;

    // include/uapi/linux/sched.h
    public const ulong CloneSighand = 0x800, CloneNewNet = 0x40000000;

    [DllImport("libc", SetLastError = true, CharSet = CharSet.Ansi)] private static extern int open(string path, int flags);
    [DllImport("libc")] private static extern int close(int fd);
    [DllImport("libc", SetLastError = true)] private static extern int unshare(int flags);
    [DllImport("libc")] private static extern int gettid();
    [DllImport("libc", SetLastError = true)] private static extern int execve(string path, string?[] argv, string?[] envp);
    [DllImport("libc", SetLastError = true)] private static extern long syscall(long number, long a1, long a2, long a3, long a4, long a5);
    [DllImport("libc", SetLastError = true)] private static extern long syscall(long number, int dirfd, string path, string?[] argv, string?[] envp, int flags);

    /// <summary>0 when <paramref name="path"/> opens read-only, else the errno.</summary>
    public static int OpenErrno(string path)
    {
        var fd = open(path, 0);
        if (fd < 0) return Marshal.GetLastPInvokeError();
        close(fd);
        return 0;
    }

    /// <summary>unshare(0) changes nothing and succeeds unless seccomp denies it.</summary>
    public static int UnshareNothingErrno() => unshare(0) == 0 ? 0 : Marshal.GetLastPInvokeError();

    /// <summary>execve of <paramref name="emptyFile"/>, which must be an empty file with an execute
    /// bit: the kernel refuses it with ENOEXEC once every permission check has passed, so the
    /// errno is EPERM (seccomp), EACCES (landlock or the mount's noexec) or ENOEXEC (allowed).</summary>
    public static int ExecEmptyFileErrno(string emptyFile)
    {
        if (new FileInfo(emptyFile).Length != 0) throw new ArgumentException($"{emptyFile} is not empty: probing it could replace the process");
        execve(emptyFile, [emptyFile, null], [null]);
        return Marshal.GetLastPInvokeError();
    }

    /// <summary>The same through execveat(AT_FDCWD, path, ...).</summary>
    public static int ExecveatEmptyFileErrno(string emptyFile)
    {
        if (new FileInfo(emptyFile).Length != 0) throw new ArgumentException($"{emptyFile} is not empty: probing it could replace the process");
        const int AtFdcwd = -100;
        syscall(Nr.Execveat, AtFdcwd, emptyFile, [emptyFile, null], [null], 0);
        return Marshal.GetLastPInvokeError();
    }

    /// <summary>clone(CLONE_SIGHAND | <paramref name="extraFlags"/>) without CLONE_VM, which the
    /// kernel refuses with EINVAL before it creates anything: EINVAL means the filter let the
    /// flags through, EPERM that it denied them.</summary>
    public static int InvalidCloneErrno(ulong extraFlags) =>
        Errno(syscall(Nr.Clone, (long)(CloneSighand | extraFlags), 0, 0, 0, 0));

    /// <summary>clone3(NULL, 0): EINVAL (size too small) from the kernel, ENOSYS from the filter.</summary>
    public static int Clone3Errno() => Errno(syscall(Nr.Clone3, 0, 0, 0, 0, 0));

    /// <summary>io_uring_setup(1, NULL), then io_uring_enter and io_uring_register on a file
    /// descriptor that cannot be open (not -1: newer kernels give fd -1 a meaning for register):
    /// EFAULT/EBADF/EBADF from the kernel (when io_uring is enabled), EPERM from the filter.</summary>
    public static (int Setup, int Enter, int Register) IoUringErrnos() =>
        (Errno(syscall(Nr.IoUringSetup, 1, 0, 0, 0, 0)),
         Errno(syscall(Nr.IoUringEnter, NoSuchFd, 0, 0, 0, 0)),
         Errno(syscall(Nr.IoUringRegister, NoSuchFd, 0, 0, 0, 0)));

    private const long NoSuchFd = int.MaxValue;

    public static int ThreadId() => gettid();

    private static int Errno(long rc) => rc < 0 ? Marshal.GetLastPInvokeError() : 0;

    public static string Name(int errno) => errno switch
    {
        0 => "ok",
        EPERM => "EPERM",
        ENOENT => "ENOENT",
        ENOEXEC => "ENOEXEC",
        EBADF => "EBADF",
        EACCES => "EACCES",
        EFAULT => "EFAULT",
        EINVAL => "EINVAL",
        ENOSYS => "ENOSYS",
        _ => "errno " + errno,
    };

    /// <summary>System call numbers (the generic table on arm64, the x86_64 table on x64).</summary>
    private static class Nr
    {
        private static readonly bool X64 = RuntimeInformation.ProcessArchitecture == Architecture.X64;
        public static long Clone => X64 ? 56 : 220;
        public static long Execveat => X64 ? 322 : 281;
        // newer calls share one number on every architecture
        public const long IoUringSetup = 425, IoUringEnter = 426, IoUringRegister = 427, Clone3 = 435;
    }
}
