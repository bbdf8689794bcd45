using System.Runtime.InteropServices;

namespace WhaleWall.Host.Sandbox;

/// <summary>Raw system calls whose errno shows whether the sandbox holds (libc, no managed
/// wrappers that would translate or retry).</summary>
public static class Probes
{
    public const int EPERM = 1, ENOENT = 2, EACCES = 13;

    [DllImport("libc", SetLastError = true, CharSet = CharSet.Ansi)] private static extern int open(string path, int flags);
    [DllImport("libc")] private static extern int close(int fd);
    [DllImport("libc", SetLastError = true)] private static extern int unshare(int flags);
    [DllImport("libc")] private static extern int gettid();

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

    public static int ThreadId() => gettid();

    public static string Name(int errno) => errno switch
    {
        0 => "ok",
        EPERM => "EPERM",
        ENOENT => "ENOENT",
        EACCES => "EACCES",
        _ => "errno " + errno,
    };
}
