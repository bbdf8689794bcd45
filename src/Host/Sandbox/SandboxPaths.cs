using System.Runtime.InteropServices;

namespace WhaleWall.Host.Sandbox;

/// <summary>What the daemon may touch under landlock. Everything else in the file system is
/// off limits (opening it fails with EACCES), including `/` itself, which the daemon uses to
/// check after the re-exec that the restriction is in force.</summary>
public static class SandboxPaths
{
    public static IReadOnlyList<(string Path, ulong Access)> For(string dataDir, string dockerHost)
    {
        const ulong ro = Landlock.ReadOnly;
        const ulong procRead = Landlock.ReadFile | Landlock.ReadDir;
        var rules = new List<(string, ulong)>
        {
            // shared libraries (libnftables, libseccomp, libc, the .NET runtime when installed
            // under /usr), /etc for resolv.conf, hosts, nsswitch, protocols/services, time zones
            ("/usr", ro), ("/lib", ro), ("/lib64", ro), ("/lib32", ro), ("/bin", ro), ("/sbin", ro), ("/etc", ro),
            // the application and the runtime it runs on (the app dir holds both when self-contained)
            (AppContext.BaseDirectory, ro),
            (RuntimeDirectory(), ro),
            // the runtime reads cgroup limits, its own maps and status; nftables and the bridge
            // check read /proc/sys and /proc/net
            ("/proc", procRead), ("/sys", procRead),
            // bridge-nf-call-ip(6)tables: set to 1 when they are not (BridgeNetfilter)
            ("/proc/sys/net/bridge", procRead | Landlock.WriteFile | Landlock.Truncate),
            ("/dev/null", Landlock.ReadFile | Landlock.WriteFile | Landlock.Truncate),
            ("/dev/urandom", Landlock.ReadFile), ("/dev/random", Landlock.ReadFile), ("/dev/zero", Landlock.ReadFile),
            // state (SQLite journal) and nothing else writable; not executable (ReadWrite has no
            // Execute, and no other rule grants it beneath the data dir)
            (dataDir, Landlock.ReadWrite),
        };
        if (Environment.ProcessPath is { } exe && Path.GetDirectoryName(exe) is { } exeDir) rules.Add((exeDir, ro));
        if (Environment.GetEnvironmentVariable("DOTNET_ROOT") is { Length: > 0 } dotnetRoot) rules.Add((dotnetRoot, ro));
        // landlock (ABI <= 7) does not mediate connect() on a unix socket; the rule documents the
        // intent and keeps the socket reachable should a later ABI start to
        // TLS client certificates for a tcp:// Docker endpoint
        if (Environment.GetEnvironmentVariable("DOCKER_CERT_PATH") is { Length: > 0 } certs) rules.Add((certs, ro));
        // what `_dns_` opens when a container has no --dns (ContainerResolvers): the Docker daemon's
        // daemon.json (under /etc by default) and systemd-resolved's resolv.conf, read only; never
        // the containers' own resolv.conf files
        rules.Add((Environment.GetEnvironmentVariable("WHALEWALL_DOCKER_CONFIG") is { Length: > 0 } config ? config : WhaleWall.Actors.Docker.ResolverSettings.DefaultDaemonConfig, Landlock.ReadFile));
        rules.Add((Path.GetDirectoryName(WhaleWall.Actors.Docker.ContainerResolvers.SystemdResolvConf)!, Landlock.ReadFile | Landlock.ReadDir));
        if (dockerHost.StartsWith("unix://", StringComparison.Ordinal))
            rules.Add((dockerHost["unix://".Length..], Landlock.ReadFile | Landlock.WriteFile));
        return rules;
    }

    /// <summary>Rules that grant Execute on a directory containing <paramref name="dataDir"/>
    /// (landlock adds up the rights of every rule above a file and cannot take one away): a data
    /// dir beneath the app dir, /usr, /etc, ... would be executable despite its own rule.</summary>
    public static IReadOnlyList<string> ExecutableAbove(string dataDir, IReadOnlyList<(string Path, ulong Access)> rules)
    {
        var dir = Path.TrimEndingDirectorySeparator(Path.GetFullPath(dataDir)) + "/";
        return rules
            .Where(r => (r.Access & Landlock.Execute) != 0)
            .Select(r => Path.TrimEndingDirectorySeparator(Path.GetFullPath(r.Path)) + "/")
            .Where(p => dir.StartsWith(p, StringComparison.Ordinal))
            .Select(p => p.Length > 1 ? p.TrimEnd('/') : p)
            .Distinct()
            .ToList();
    }

    /// <summary>Where System.Private.CoreLib lives (the shared framework, or the app dir when
    /// self-contained; empty in a single-file bundle, where the app dir covers it).</summary>
    private static string RuntimeDirectory() =>
        Path.GetDirectoryName(typeof(object).Assembly.Location) is { Length: > 0 } d ? d : AppContext.BaseDirectory;
}
