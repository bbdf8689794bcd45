using System.Runtime.InteropServices;

namespace WhaleWall.TestSupport;

/// <summary>Runs code inside another network namespace: a fresh thread calls setns(2) and
/// the work runs there. Sockets created on that thread belong to that namespace for their
/// whole life, whichever thread uses them later.</summary>
public static class Netns
{
    private const int CLONE_NEWNET = 0x40000000;

    [DllImport("libc", SetLastError = true)]
    private static extern int setns(int fd, int nstype);

    [DllImport("libc", SetLastError = true)]
    private static extern int open(string path, int flags);

    [DllImport("libc", SetLastError = true)]
    private static extern int close(int fd);

    /// <summary>Path of a named namespace made with `ip netns add`.</summary>
    public static string Named(string name) => $"/run/netns/{name}";

    /// <summary>Path of the namespace a process lives in (e.g. a container's init pid).</summary>
    public static string OfPid(int pid) => $"/proc/{pid}/ns/net";

    public static T Run<T>(string nsPath, Func<T> work)
    {
        T result = default!;
        Exception? failure = null;
        var thread = new Thread(() =>
        {
            try
            {
                var fd = open(nsPath, 0 /* O_RDONLY */);
                if (fd < 0) throw new IOException($"open {nsPath}: errno {Marshal.GetLastWin32Error()}");
                try
                {
                    if (setns(fd, CLONE_NEWNET) != 0)
                        throw new IOException($"setns {nsPath}: errno {Marshal.GetLastWin32Error()}");
                }
                finally { close(fd); }
                result = work();
            }
            catch (Exception e) { failure = e; }
        }) { IsBackground = true, Name = "netns " + nsPath };
        thread.Start();
        thread.Join();
        if (failure is not null) throw new AggregateException($"in netns {nsPath}", failure);
        return result;
    }

    public static void Run(string nsPath, Action work) => Run(nsPath, () => { work(); return 0; });
}
