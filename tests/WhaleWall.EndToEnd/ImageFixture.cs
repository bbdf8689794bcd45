using System.Diagnostics;
using Docker.DotNet.Models;
using WhaleWall.TestSupport;
using Xunit;

namespace WhaleWall.EndToEnd;

[CollectionDefinition(Name)]
public sealed class ImageCollection : ICollectionFixture<ImageFixture>
{
    public const string Name = "image";
}

/// <summary>
/// A private dockerd (its own harness) with WhaleWall's image built from the repo's Dockerfile,
/// once per test run: base images made locally (<see cref="DebianImages"/>), the legacy builder
/// (DOCKER_BUILDKIT=0). The compose and Swarm tests run the image the way the deploy files say.
/// </summary>
public sealed class ImageFixture : IAsyncLifetime
{
    public const string Image = "ww-whalewall:test";
    public const string Table = "whalewall";   // the compose/stack default: the harness namespace is ours alone

    public DockerHarness Harness { get; } = new();
    public string RepoRoot { get; } = FindRepoRoot();
    public string BuildLog => Path.Combine(Harness.Dir, "image-build.log");
    public TimeSpan BaseImagesTime { get; private set; }
    public TimeSpan BuildTime { get; private set; }
    public List<string> Diagnostics { get; } = new();
    public KernelTable KernelTable => new(Harness.HostNsPath, Table);
    private int _disposed;

    public async Task InitializeAsync()
    {
        AppDomain.CurrentDomain.ProcessExit += (_, _) =>
        {
            try { DisposeAsync().Wait(TimeSpan.FromSeconds(30)); } catch { }
        };
        Harness.Log = m => { lock (Diagnostics) Diagnostics.Add($"{DateTime.UtcNow:HH:mm:ss.fff} {m}"); };
        await Harness.InitializeAsync();
        Harness.InternetTcpServer(TestNet.Server1, TestNet.TcpPort);
        Harness.InternetTcpServer(TestNet.Server1, TestNet.TcpPortOther);
        Harness.InternetTcpServer(TestNet.Server2, TestNet.TcpPort);
        Harness.InternetUdpServer(TestNet.Server1, TestNet.UdpPort);

        var sw = Stopwatch.StartNew();
        await DebianImages.EnsureRuntimeAsync(Harness, BuildLog);
        await DebianImages.EnsureSdkAsync(Harness, RepoRoot, BuildLog);
        BaseImagesTime = sw.Elapsed;
        sw.Restart();
        var epoch = Shell.Try("git", "-C", RepoRoot, "log", "-1", "--format=%ct");
        Cli.RunOk(BuildLog, Env(("DOCKER_BUILDKIT", "0")), TimeSpan.FromMinutes(15), "/usr/bin/docker", "-H", Harness.DockerHost,
            "build", "-f", Path.Combine(RepoRoot, "Dockerfile"), "-t", Image,
            "--build-arg", "SDK_IMAGE=" + DebianImages.SdkImage,
            "--build-arg", "RUNTIME_IMAGE=" + DebianImages.RuntimeImage,
            "--build-arg", "SOURCE_DATE_EPOCH=" + (epoch.Code == 0 ? epoch.Out.Trim() : "0"),
            RepoRoot);
        BuildTime = sw.Elapsed;
        Console.WriteLine($"[image] base images {BaseImagesTime.TotalSeconds:F1} s, docker build {BuildTime.TotalSeconds:F1} s");
        Harness.Log($"base images {BaseImagesTime.TotalSeconds:F1} s, docker build {BuildTime.TotalSeconds:F1} s");
    }

    public async Task DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) == 1) return;
        await Harness.DisposeAsync();
    }

    /// <summary>Environment for the docker CLI and docker-compose against this harness.</summary>
    public Dictionary<string, string> Env(params (string K, string V)[] extra)
    {
        var env = new Dictionary<string, string>
        {
            ["DOCKER_HOST"] = Harness.DockerHost,
            ["WHALEWALL_IMAGE"] = Image,
            ["EXAMPLE_IMAGE"] = Harness.Image,
            ["DOCKER_SOCKET"] = Harness.DockerSocket,
            ["WHALEWALL_NFT_TABLE"] = Table,
            ["WHALEWALL_LOG_LEVEL"] = "debug",
            // what the deploy files tell operators to pass: the socket's group, read at run time
            ["DOCKER_GID"] = DockerSocketGid.ToString(),
        };
        foreach (var (k, v) in extra) env[k] = v;
        return env;
    }

    public string Log => Path.Combine(Harness.Dir, "deploy.log");

    /// <summary>The group owning the harness' Docker socket (dockerd gives it the `docker`
    /// group), as `stat -c %g` reads it.</summary>
    public int DockerSocketGid => int.Parse(Shell.Run("stat", "-c", "%g", Harness.DockerSocket).Trim());

    public string Docker(params string[] args) =>
        Cli.RunOk(Log, Env(), TimeSpan.FromMinutes(3), "/usr/bin/docker", args);

    /// <summary>Running containers with all these labels.</summary>
    public async Task<IList<ContainerListResponse>> ContainersAsync(params (string K, string V)[] labels)
    {
        var filter = new Dictionary<string, IDictionary<string, bool>>
        {
            ["label"] = labels.ToDictionary(l => $"{l.K}={l.V}", _ => true),
            ["status"] = new Dictionary<string, bool> { ["running"] = true },
        };
        return await Harness.Docker.Containers.ListContainersAsync(new ContainersListParameters { Filters = filter });
    }

    public async Task<(string Ns, string Ip)> NsAndIpAsync(string id)
    {
        var i = await Harness.Docker.Containers.InspectContainerAsync(id);
        var ip = i.NetworkSettings.Networks.Values.Select(n => n.IPAddress).First(a => !string.IsNullOrEmpty(a));
        return (Netns.OfPid((int)i.State.Pid), ip);
    }

    /// <summary>Waits for the ready line in a container's log.</summary>
    public async Task<string> WaitReadyAsync(string id, TimeSpan timeout)
    {
        var logs = "";
        var ok = await E2eProcess.Eventually(() =>
        {
            logs = Harness.DockerCli("logs", id).Out + Harness.DockerCli("logs", id).Err;
            return logs.Contains(WhaleWallDaemon.ReadyLine, StringComparison.OrdinalIgnoreCase);
        }, timeout, TimeSpan.FromMilliseconds(300));
        Assert.True(ok, $"whalewall container {id[..12]} not ready:\n{Cli.Tail(logs, 40)}");
        return logs;
    }

    private static string FindRepoRoot()
    {
        for (var d = new DirectoryInfo(AppContext.BaseDirectory); d is not null; d = d.Parent)
            if (File.Exists(Path.Combine(d.FullName, "Dockerfile")) && File.Exists(Path.Combine(d.FullName, "WhaleWall.sln")))
                return d.FullName;
        throw new InvalidOperationException("repository root (Dockerfile + WhaleWall.sln) not found above " + AppContext.BaseDirectory);
    }
}
