using System.Diagnostics;

namespace WhaleWall.TestSupport;

/// <summary>
/// Local stand-ins for the registry images the Dockerfile builds from (there is no image
/// registry here): a Debian bookworm rootfs made with debootstrap from the machine's configured
/// Debian mirror (minbase + libnftables1, libseccomp2, ca-certificates, and libcap2-bin for the
/// Dockerfile's setcap), imported as the runtime base; and the same rootfs plus this machine's
/// .NET SDK and an offline NuGet feed holding exactly the packages the daemon restores for
/// linux-x64, as the SDK base. The rootfs and the feed are cached in <see cref="CacheDir"/> (per machine, so once per CI run at most).
/// </summary>
public static class DebianImages
{
    public const string RuntimeImage = "ww-debian:bookworm";
    public const string SdkImage = "ww-dotnet-sdk:10";
    public const string Suite = "bookworm";
    public const string Packages = "libnftables1,libseccomp2,ca-certificates,libcap2-bin";

    public static string CacheDir =>
        Environment.GetEnvironmentVariable("WHALEWALL_E2E_CACHE") is { Length: > 0 } d ? d : "/var/tmp/whalewall-e2e-cache";

    private static readonly SemaphoreSlim Gate = new(1, 1);

    /// <summary>The rootfs tarball (built once: ~30 s and ~220 MB from the Debian mirror).</summary>
    public static async Task<string> RootfsTarAsync(string log)
    {
        var tar = Path.Combine(CacheDir, $"debian-{Suite}-minbase-{Packages.Replace(',', '+')}.tar");
        await Gate.WaitAsync();
        try
        {
            if (File.Exists(tar)) return tar;
            Directory.CreateDirectory(CacheDir);
            var root = Path.Combine(CacheDir, "rootfs-" + Guid.NewGuid().ToString("N")[..6]);
            try
            {
                Cli.RunOk(log, null, TimeSpan.FromMinutes(10), "debootstrap",
                    "--variant=minbase", "--include=" + Packages, Suite, root, Mirror());
                // apt lists and caches are not needed in an image
                foreach (var d in new[] { "var/cache/apt/archives", "var/lib/apt/lists" })
                    foreach (var f in Directory.EnumerateFiles(Path.Combine(root, d), "*", SearchOption.TopDirectoryOnly))
                        File.Delete(f);
                Cli.RunOk(log, null, TimeSpan.FromMinutes(5), "tar", "--numeric-owner", "-C", root, "-cf", tar + ".part", ".");
                File.Move(tar + ".part", tar, overwrite: true);
            }
            finally
            {
                // debootstrap mounts /proc and /sys in the target while it runs; it unmounts them,
                // but a failed run may not
                foreach (var m in new[] { "proc", "sys", "dev/pts", "dev" })
                    Shell.Try("umount", Path.Combine(root, m));
                if (Directory.Exists(root)) Shell.Try("rm", "-rf", "--one-file-system", root);
            }
            return tar;
        }
        finally { Gate.Release(); }
    }

    /// <summary>The Debian mirror apt is configured with (debian.sources or sources.list).</summary>
    public static string Mirror()
    {
        foreach (var file in new[] { "/etc/apt/sources.list.d/debian.sources", "/etc/apt/sources.list" })
        {
            if (!File.Exists(file)) continue;
            foreach (var line in File.ReadLines(file).Select(l => l.Trim()))
            {
                if (line.StartsWith("URIs:", StringComparison.Ordinal))
                {
                    var uri = line["URIs:".Length..].Trim().Split(' ')[0];
                    if (!uri.Contains("security", StringComparison.Ordinal)) return uri;
                }
                if (line.StartsWith("deb ", StringComparison.Ordinal) && !line.Contains("security", StringComparison.Ordinal))
                    return line.Split(' ', StringSplitOptions.RemoveEmptyEntries).First(p => p.Contains("://"));
            }
        }
        return "http://deb.debian.org/debian";
    }

    /// <summary>Imports the runtime base into the harness engine (unless there).</summary>
    public static async Task EnsureRuntimeAsync(DockerHarness h, string log)
    {
        if (HasImage(h, RuntimeImage)) return;
        var tar = await RootfsTarAsync(log);
        Cli.RunOk(log, null, TimeSpan.FromMinutes(5), "/usr/bin/docker", "-H", h.DockerHost, "import", tar, RuntimeImage);
    }

    /// <summary>Imports the SDK base: rootfs + the host's dotnet root at /usr/share/dotnet + an
    /// offline NuGet feed (the packages folder of a linux-x64 restore of src/Host) configured as
    /// the only source.</summary>
    public static async Task EnsureSdkAsync(DockerHarness h, string repoRoot, string log)
    {
        if (HasImage(h, SdkImage)) return;
        var rootfs = await RootfsTarAsync(log);
        var feed = RestoreFeed(repoRoot, log);
        var dotnetRoot = Path.GetDirectoryName(Path.GetFullPath(ResolveLink(Which("dotnet"))))!;
        var stage = Path.Combine(h.Dir, "sdk-stage");
        Directory.CreateDirectory(Path.Combine(stage, "usr", "bin"));
        Directory.CreateDirectory(Path.Combine(stage, "root", ".nuget", "NuGet"));
        File.CreateSymbolicLink(Path.Combine(stage, "usr", "bin", "dotnet"), "/usr/share/dotnet/dotnet");
        File.WriteAllText(Path.Combine(stage, "root", ".nuget", "NuGet", "NuGet.Config"), """
            <?xml version="1.0" encoding="utf-8"?>
            <configuration>
              <packageSources>
                <clear />
                <add key="offline" value="/root/.nuget/packages" />
              </packageSources>
            </configuration>
            """);
        var tar = Path.Combine(h.Dir, "sdk.tar");
        File.Copy(rootfs, tar, overwrite: true);
        Cli.RunOk(log, null, TimeSpan.FromMinutes(5), "tar", "--numeric-owner", "-rf", tar, "-C", stage, "usr/bin/dotnet", "root/.nuget");
        Cli.RunOk(log, null, TimeSpan.FromMinutes(5), "tar", "--numeric-owner", "-rf", tar,
            "--transform", $"s,^{dotnetRoot.TrimStart('/')},usr/share/dotnet,", "-C", "/", dotnetRoot.TrimStart('/'));
        Cli.RunOk(log, null, TimeSpan.FromMinutes(5), "tar", "--numeric-owner", "-rf", tar,
            "--transform", "s,^nuget-packages,root/.nuget/packages,", "-C", Path.GetDirectoryName(feed)!, Path.GetFileName(feed));
        Cli.RunOk(log, null, TimeSpan.FromMinutes(5), "/usr/bin/docker", "-H", h.DockerHost, "import",
            "-c", "ENV DOTNET_SYSTEM_GLOBALIZATION_INVARIANT=1", "-c", "ENV DOTNET_CLI_TELEMETRY_OPTOUT=1",
            "-c", "ENV DOTNET_NOLOGO=1", "-c", "ENV DOTNET_SKIP_FIRST_TIME_EXPERIENCE=1", "-c", "ENV NUGET_AUDIT=false",
            tar, SdkImage);
        File.Delete(tar);
        Directory.Delete(stage, recursive: true);
    }

    /// <summary>A packages folder holding what `dotnet restore src/Host -r linux-x64` (self-contained)
    /// needs; restored from NuGet on the host (which reaches it) into the cache, in a copy of the
    /// project files so the repo's obj/ folders are left alone.</summary>
    private static string RestoreFeed(string repoRoot, string log)
    {
        var files = new[] { "Directory.Build.props" }
            .Concat(Directory.GetFiles(Path.Combine(repoRoot, "src"), "*.csproj", SearchOption.AllDirectories)
                .Select(p => Path.GetRelativePath(repoRoot, p)))
            .OrderBy(p => p, StringComparer.Ordinal).ToList();
        var key = Convert.ToHexString(System.Security.Cryptography.SHA256.HashData(
            System.Text.Encoding.UTF8.GetBytes(string.Join("\n", files.Select(f => f + "\n" + File.ReadAllText(Path.Combine(repoRoot, f)))))))[..12];
        var dir = Path.Combine(CacheDir, "feed-" + key, "nuget-packages");
        if (Directory.Exists(dir)) return dir;
        var work = Path.Combine(CacheDir, "restore-" + Guid.NewGuid().ToString("N")[..6]);
        try
        {
            foreach (var f in files)
            {
                Directory.CreateDirectory(Path.GetDirectoryName(Path.Combine(work, f))!);
                File.Copy(Path.Combine(repoRoot, f), Path.Combine(work, f));
            }
            Cli.RunOk(log, null, TimeSpan.FromMinutes(10), Which("dotnet"), "restore",
                Path.Combine(work, "src", "Host", "WhaleWall.Host.csproj"), "-r", "linux-x64", "-p:SelfContained=true",
                "--packages", dir + ".part");
            Directory.Move(dir + ".part", dir);
        }
        finally { if (Directory.Exists(work)) Directory.Delete(work, recursive: true); }
        return dir;
    }

    public static bool HasImage(DockerHarness h, string image) =>
        h.DockerCli("image", "inspect", image).Code == 0;

    public static string Which(string program)
    {
        foreach (var d in (Environment.GetEnvironmentVariable("PATH") ?? "").Split(':', StringSplitOptions.RemoveEmptyEntries))
        {
            var p = Path.Combine(d, program);
            if (File.Exists(p)) return p;
        }
        throw new FileNotFoundException($"{program} is not on PATH");
    }

    private static string ResolveLink(string path) =>
        new FileInfo(path).ResolveLinkTarget(returnFinalTarget: true)?.FullName ?? path;
}
