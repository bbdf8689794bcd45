using System.Net.Sockets;
using System.Runtime.InteropServices;

namespace WhaleWall.Host;

/// <summary>
/// What a daemon running as a non-root user needs from its host, checked once at start so a
/// missing group or a volume owned by someone else is one clear error rather than a retry loop:
/// CAP_NET_ADMIN, the Docker socket (root:docker 0660, so the process needs the socket's group,
/// which differs from host to host and is passed at run time) and a writable data dir. None
/// heals by waiting: a process's capabilities and groups are fixed when it starts.
/// </summary>
public static class AccessCheck
{
    /// <summary>Null when the Docker socket accepts a connection, is not there (yet: Docker may
    /// be starting; the event stream retries) or is not a unix socket; else what is wrong and how
    /// to fix it.</summary>
    public static string? DockerSocket(string dockerHost)
    {
        if (!dockerHost.StartsWith("unix://", StringComparison.Ordinal)) return null;
        var path = dockerHost["unix://".Length..];
        using var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        try
        {
            socket.Connect(new UnixDomainSocketEndPoint(path));
            return null;
        }
        catch (SocketException e) when (e.SocketErrorCode == SocketError.AccessDenied)
        {
            var owner = Owner(path) is { } o ? $"owned by uid {o.Uid} gid {o.Gid}, mode {Convert.ToString(o.Mode & 0xfff, 8)}" : "owner unknown";
            return $"permission denied on the Docker socket {path} ({owner}); whalewall runs as {Self()}. " +
                   $"Give it the socket's group: `--group-add $(stat -c %g {path})` for docker run, DOCKER_GID for docker-compose.yml " +
                   "and deploy/swarm-stack.yml, SupplementaryGroups= in the systemd unit (see README, \"Deployment\")";
        }
        catch (SocketException)
        {
            return null;
        }
    }

    /// <summary>Null when the process holds CAP_NET_ADMIN (netlink to nftables); else why it
    /// may not: no `--cap-add NET_ADMIN`, `no-new-privileges` (which keeps a file capability
    /// from taking), or a binary that lost its file capability.</summary>
    public static string? NetAdmin()
    {
        const int CapNetAdmin = 12;
        var eff = File.ReadLines("/proc/self/status").FirstOrDefault(l => l.StartsWith("CapEff:", StringComparison.Ordinal))?[7..].Trim();
        if (eff is null || (Convert.ToUInt64(eff, 16) & (1UL << CapNetAdmin)) != 0) return null;
        return $"whalewall runs without CAP_NET_ADMIN (CapEff {eff}, as {Self()}), so it cannot program nftables. In a container: " +
               "`--cap-add NET_ADMIN` (with --cap-drop ALL), and not `--security-opt no-new-privileges`, which keeps the image's file " +
               "capability from taking; under systemd: AmbientCapabilities=CAP_NET_ADMIN; by hand: setcap cap_net_admin+ep on the binary";
    }

    /// <summary>Null when the data dir and the files in it are writable; else what is wrong.</summary>
    public static string? DataDir(string dataDir)
    {
        if (!Directory.Exists(dataDir)) return null;   // created by the sandbox entry or the store
        var unwritable = new[] { dataDir }.Concat(Directory.EnumerateFiles(dataDir))
            .Where(p => access(p, W_OK) != 0)
            .ToList();
        if (unwritable.Count == 0) return null;
        var first = unwritable[0];
        var owner = Owner(first) is { } o ? $"owned by uid {o.Uid} gid {o.Gid}" : "owner unknown";
        return $"the data dir is not writable: {first} ({owner}{(unwritable.Count > 1 ? $", and {unwritable.Count - 1} more" : "")}); " +
               $"whalewall runs as {Self()}. Give the data dir and its files to that user " +
               $"(chown -R {UidOf("Uid")}:{UidOf("Gid")} on it; see README, \"Deployment\")";
    }

    private static string Self() => $"uid {UidOf("Uid")} gid {UidOf("Gid")} groups [{UidOf("Groups").Trim()}]";

    /// <summary>The effective id (second field) of Uid:/Gid:, or the whole Groups: line.</summary>
    private static string UidOf(string key)
    {
        var line = File.ReadLines("/proc/self/status").FirstOrDefault(l => l.StartsWith(key + ":", StringComparison.Ordinal));
        if (line is null) return "?";
        var fields = line[(key.Length + 1)..].Split('\t', StringSplitOptions.RemoveEmptyEntries);
        return key == "Groups" ? string.Join(' ', fields) : fields.Length > 1 ? fields[1] : "?";
    }

    private const int W_OK = 2, AT_FDCWD = -100, StatxBasicStats = 0x7ff;

    [DllImport("libc", SetLastError = true, CharSet = CharSet.Ansi)] private static extern int access(string path, int mode);
    [DllImport("libc", SetLastError = true, CharSet = CharSet.Ansi)] private static extern unsafe int statx(int dirfd, string path, int flags, uint mask, byte* buf);

    /// <summary>Owner and mode through statx, whose layout is the same on every architecture
    /// (stx_uid at 20, stx_gid at 24, stx_mode at 28).</summary>
    private static unsafe (uint Uid, uint Gid, int Mode)? Owner(string path)
    {
        var buf = stackalloc byte[256];
        if (statx(AT_FDCWD, path, 0, StatxBasicStats, buf) != 0) return null;
        return (*(uint*)(buf + 20), *(uint*)(buf + 24), *(ushort*)(buf + 28));
    }
}
