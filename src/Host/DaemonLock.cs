using System.Runtime.InteropServices;
using System.Text;

namespace WhaleWall.Host;

/// <summary>"A daemon runs on this data directory": an exclusive <c>flock</c> on
/// <c>whalewall.lock</c> in the data directory, held by the daemon for its whole life. The kernel
/// drops it when the process ends however it ends (<c>kill -9</c> included), a reused pid cannot
/// fake it, and it works across pid namespaces (the daemon in its container, the CLI on the
/// host or through <c>docker exec</c>) as long as both see the same data directory. `flush`
/// refuses while it is held, `status` says whether the daemon runs from it. The file holds the
/// holder's pid, for people and for `status` to match the daemon's report to it.
/// Plain libc calls: .NET's FileStream takes flock locks of its own (LOCK_SH for shared opens)
/// that would get in the way.</summary>
public sealed class DaemonLock : IDisposable
{
    public const string FileName = "whalewall.lock";

    private const int O_RDONLY = 0, O_RDWR = 2, O_CREAT = 0x40, O_CLOEXEC = 0x80000;
    private const int LOCK_SH = 1, LOCK_EX = 2, LOCK_NB = 4;
    private const int EWOULDBLOCK = 11, ENOENT = 2;

    [DllImport("libc", SetLastError = true)] private static extern int open(string path, int flags, int mode);
    [DllImport("libc", SetLastError = true)] private static extern int close(int fd);
    [DllImport("libc", SetLastError = true)] private static extern int flock(int fd, int operation);
    [DllImport("libc", SetLastError = true)] private static extern nint read(int fd, byte[] buffer, nint count);
    [DllImport("libc", SetLastError = true)] private static extern nint pwrite(int fd, byte[] buffer, nint count, long offset);
    [DllImport("libc", SetLastError = true)] private static extern int ftruncate(int fd, long length);

    private int fd;

    private DaemonLock(int fd) => this.fd = fd;

    public static string PathIn(string dataDir) => Path.Combine(dataDir, FileName);

    /// <summary>Takes the lock, waiting up to <paramref name="wait"/> (a `status` may hold a
    /// shared lock for an instant); null when another process holds it.</summary>
    public static DaemonLock? TryAcquire(string dataDir, TimeSpan wait)
    {
        Directory.CreateDirectory(dataDir);
        var path = PathIn(dataDir);
        var fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0x1a4 /* 0644 */);
        if (fd < 0) throw new IOException($"cannot open {path}: errno {Marshal.GetLastPInvokeError()}");
        var until = DateTime.UtcNow + wait;
        while (flock(fd, LOCK_EX | LOCK_NB) != 0)
        {
            var errno = Marshal.GetLastPInvokeError();
            if (errno != EWOULDBLOCK || DateTime.UtcNow >= until)
            {
                close(fd);
                return errno == EWOULDBLOCK ? null : throw new IOException($"flock({path}): errno {errno}");
            }
            Thread.Sleep(100);
        }
        var pid = Encoding.ASCII.GetBytes(Environment.ProcessId + "\n");
        ftruncate(fd, 0);
        pwrite(fd, pid, pid.Length, 0);
        return new DaemonLock(fd);
    }

    /// <summary>True while a daemon holds the lock of <paramref name="dataDir"/>. Takes a shared
    /// lock for an instant; read access is enough, so a non-root `status` can ask.</summary>
    public static bool IsHeld(string dataDir)
    {
        var path = PathIn(dataDir);
        var fd = open(path, O_RDONLY | O_CLOEXEC, 0);
        if (fd < 0)
        {
            var errno = Marshal.GetLastPInvokeError();
            return errno == ENOENT ? false : throw new IOException($"cannot open {path}: errno {errno}");
        }
        try { return flock(fd, LOCK_SH | LOCK_NB) != 0 && Marshal.GetLastPInvokeError() == EWOULDBLOCK; }
        finally { close(fd); }
    }

    /// <summary>The pid written by the last holder (it may be gone: see <see cref="IsHeld"/>).</summary>
    public static int? HolderPid(string dataDir)
    {
        var fd = open(PathIn(dataDir), O_RDONLY | O_CLOEXEC, 0);
        if (fd < 0) return null;
        try
        {
            var buffer = new byte[32];
            var n = read(fd, buffer, buffer.Length);
            return n > 0 && int.TryParse(Encoding.ASCII.GetString(buffer, 0, (int)n).Trim(), out var pid) ? pid : null;
        }
        finally { close(fd); }
    }

    public void Dispose()
    {
        if (fd < 0) return;
        close(fd);
        fd = -1;
    }
}
