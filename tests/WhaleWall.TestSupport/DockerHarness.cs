using System.Diagnostics;
using System.Text;
using Docker.DotNet;
using Docker.DotNet.Models;

namespace WhaleWall.TestSupport;

/// <summary>Options for <see cref="DockerHarness.RunContainerAsync"/>.</summary>
public sealed record ContainerOptions
{
    /// <summary>Container labels (see <see cref="E2eLabels"/>).</summary>
    public IDictionary<string, string> Labels { get; init; } = new Dictionary<string, string>();
    /// <summary>Network to attach to (default: Docker's default bridge).</summary>
    public string? Network { get; init; }
    /// <summary>Published TCP ports: container port -> host port.</summary>
    public IDictionary<int, int> PublishTcp { get; init; } = new Dictionary<int, int>();
    /// <summary>Published UDP ports: container port -> host port.</summary>
    public IDictionary<int, int> PublishUdp { get; init; } = new Dictionary<int, int>();
    /// <summary>Give the container <c>--dns</c> (the test DNS server; the default). False: no
    /// <c>--dns</c>, so the container uses the engine's configured DNS (<see
    /// cref="DockerHarness.DaemonConfig"/>: the same test DNS server).</summary>
    public bool OwnDns { get; init; } = true;
    /// <summary>Start right away (default) or only create.</summary>
    public bool Start { get; init; } = true;
    /// <summary>Default: `sleep 3600` under a shell that exits on SIGTERM (a bare sleep as pid 1
    /// ignores SIGTERM, which makes `docker stop` wait its full grace period).</summary>
    public string[] Cmd { get; init; } = ["sh", "-c", "trap 'exit 0' TERM; sleep 3600 & wait"];
    /// <summary>Capabilities added to Docker's default set (`--cap-add`), e.g. NET_ADMIN.</summary>
    public IList<string> CapAdd { get; init; } = new List<string>();
    /// <summary>A fixed IPv4 address on <see cref="Network"/> (`--ip`; the network needs a
    /// configured subnet, see <see cref="DockerHarness.CreateNetworkAsync(string, string)"/>).</summary>
    public string? Ipv4Address { get; init; }
}

/// <summary>Label helpers for the daemon's contract.</summary>
public static class E2eLabels
{
    public const string Enabled = "whalewall.enabled";
    public const string Rules = "whalewall.rules";
    public const string ComposeProject = "com.docker.compose.project";
    public const string ComposeService = "com.docker.compose.service";

    public static Dictionary<string, string> OptIn(string? rulesYaml = null)
    {
        var d = new Dictionary<string, string> { [Enabled] = "true" };
        if (rulesYaml is not null) d[Rules] = rulesYaml;
        return d;
    }

    public static Dictionary<string, string> Compose(this Dictionary<string, string> labels, string project, string service)
    {
        labels[ComposeProject] = project;
        labels[ComposeService] = service;
        return labels;
    }
}

/// <summary>
/// A private Docker engine in its own network namespace ("host" namespace) joined by a veth to a
/// second namespace, the simulated internet (see <see cref="TestNet"/>). Everything has unique
/// names per run (<c>wwe-&lt;random&gt;</c>) and is removed by <see cref="DisposeAsync"/>.
/// The machine's own docker (if any) is never touched.
/// </summary>
public sealed class DockerHarness : IAsyncDisposable
{
    /// <summary>The engine binary: $WHALEWALL_E2E_DOCKERD, /usr/sbin/dockerd (Debian docker.io),
    /// /usr/bin/dockerd (docker-ce), else the first on PATH.</summary>
    public static string Dockerd { get; } = FindDockerd();

    private static string FindDockerd()
    {
        if (Environment.GetEnvironmentVariable("WHALEWALL_E2E_DOCKERD") is { Length: > 0 } env) return env;
        var candidates = new[] { "/usr/sbin/dockerd", "/usr/bin/dockerd" }
            .Concat((Environment.GetEnvironmentVariable("PATH") ?? "").Split(':', StringSplitOptions.RemoveEmptyEntries)
                .Select(d => Path.Combine(d, "dockerd")));
        return candidates.FirstOrDefault(File.Exists) ?? "/usr/sbin/dockerd";
    }

    public string RunId { get; } = "wwe-" + Guid.NewGuid().ToString("N")[..6];
    public string HostNs => RunId + "-h";
    public string InternetNs => RunId + "-i";
    public string HostNsPath => Netns.Named(HostNs);
    public string InternetNsPath => Netns.Named(InternetNs);
    /// <summary>Veth names (&lt;= 15 chars).</summary>
    public string HostVeth => RunId.Replace("-", "") + "h";
    public string InternetVeth => RunId.Replace("-", "") + "i";

    public string Dir { get; }
    public string DockerSocket => Path.Combine(Dir, "docker.sock");
    public string DockerHost => "unix://" + DockerSocket;
    public string DockerdLog => Path.Combine(Dir, "dockerd.log");
    public string DataRoot => Path.Combine(Dir, "data");
    public string ExecRoot => Path.Combine(Dir, "exec");
    public string DockerPidFile => Path.Combine(Dir, "docker.pid");
    /// <summary>The engine's daemon.json: its "dns" is the test DNS server.</summary>
    public string DaemonConfig => Path.Combine(Dir, "daemon.json");

    public DockerClient Docker { get; private set; } = null!;
    public string Image { get; private set; } = BusyboxImage.Name;
    public TimeSpan StartupTime { get; private set; }
    public TimeSpan ShutdownTime { get; private set; }
    public Action<string> Log { get; set; } = _ => { };

    private Process? _dockerd;
    private readonly List<string> _createdNamespaces = new();
    private readonly List<string> _containers = new();
    private readonly List<string> _networks = new();
    private readonly List<IDisposable> _servers = new();
    private readonly object _gate = new();

    public DockerHarness()
    {
        Dir = Path.Combine("/tmp", RunId);
    }

    // ------------------------------------------------------------------ lifecycle

    public async Task InitializeAsync()
    {
        var sw = Stopwatch.StartNew();
        if (Environment.UserName != "root" && Environment.GetEnvironmentVariable("USER") != "root" && geteuid() != 0)
            throw new InvalidOperationException("the end-to-end harness needs root");
        if (!File.Exists(Dockerd)) throw new InvalidOperationException($"{Dockerd} missing: run scripts/install-deps.sh");
        Directory.CreateDirectory(Dir);
        // scripts/test.sh sweeps what a killed test process could not clean up: it reads the run
        // ids recorded here (only these: <id>-h/-i namespaces, pids from /tmp/<id>/*.pid, /tmp/<id>)
        if (Environment.GetEnvironmentVariable("WHALEWALL_E2E_RUNS_FILE") is { Length: > 0 } runs)
            File.AppendAllText(runs, RunId + "\n");
        try
        {
            SetUpNamespaces();
            await StartDockerdAsync();
            Image = await BusyboxImage.EnsureAsync(Docker, Dir);
        }
        catch
        {
            var tail = E2eProcess.Tail(DockerdLog, 30);
            await DisposeAsync();
            if (tail.Length > 0) Log("dockerd log tail:\n" + tail);
            throw;
        }
        StartupTime = sw.Elapsed;
        Log($"harness {RunId} up in {StartupTime.TotalMilliseconds:F0} ms");
    }

    [System.Runtime.InteropServices.DllImport("libc")]
    private static extern uint geteuid();

    private static string Ip(params string[] args) => Shell.Run("ip", args);

    private void SetUpNamespaces()
    {
        // root namespace: the only change allowed is the safety blackhole for the test supernet
        var rootRoutes = Shell.Try("ip", "-4", "route", "show", "type", "blackhole", TestNet.Supernet4);
        if (!rootRoutes.Out.Contains("198.18.0.0/15"))
            Ip("route", "add", "blackhole", TestNet.Supernet4, "metric", TestNet.BlackholeMetric.ToString());

        foreach (var ns in new[] { HostNs, InternetNs })
        {
            Ip("netns", "add", ns);
            _createdNamespaces.Add(ns);
            Ip("-n", ns, "link", "set", "lo", "up");
            // blackhole first, so nothing of ours can leave through a default route
            Ip("-n", ns, "route", "add", "blackhole", TestNet.Supernet4, "metric", TestNet.BlackholeMetric.ToString());
            Shell.Try("ip", "-n", ns, "-6", "route", "add", "blackhole", TestNet.Supernet6, "metric", TestNet.BlackholeMetric.ToString());
        }

        Ip("-n", HostNs, "link", "add", HostVeth, "type", "veth", "peer", "name", InternetVeth, "netns", InternetNs);
        Ip("-n", HostNs, "addr", "add", $"{TestNet.HostLink4}/{TestNet.LinkPrefix4}", "dev", HostVeth);
        Ip("-n", InternetNs, "addr", "add", $"{TestNet.InternetLink4}/{TestNet.LinkPrefix4}", "dev", InternetVeth);
        Shell.Try("ip", "-n", HostNs, "addr", "add", $"{TestNet.HostLink6}/{TestNet.LinkPrefix6}", "dev", HostVeth, "nodad");
        Shell.Try("ip", "-n", InternetNs, "addr", "add", $"{TestNet.InternetLink6}/{TestNet.LinkPrefix6}", "dev", InternetVeth, "nodad");
        Ip("-n", HostNs, "link", "set", HostVeth, "up");
        Ip("-n", InternetNs, "link", "set", InternetVeth, "up");
        foreach (var a in TestNet.InternetAddresses4) Ip("-n", InternetNs, "addr", "add", a + "/32", "dev", "lo");
        foreach (var a in TestNet.InternetAddresses6) Shell.Try("ip", "-n", InternetNs, "addr", "add", a + "/128", "dev", "lo", "nodad");

        // routes: check they are unused first
        RequireUnrouted(HostNs, TestNet.Server1);
        Ip("-n", HostNs, "route", "add", TestNet.InternetPrefix4, "via", TestNet.InternetLink4);
        Shell.Try("ip", "-n", HostNs, "-6", "route", "add", TestNet.InternetPrefix6, "via", TestNet.InternetLink6);
        if (Shell.Try("ip", "-n", InternetNs, "route", "show", "default").Out.Trim().Length > 0)
            throw new InvalidOperationException($"{InternetNs} unexpectedly has a default route");
        Ip("-n", InternetNs, "route", "add", "default", "via", TestNet.HostLink4);
        // containers' addresses (unmasqueraded traffic) go back to the host namespace, below the blackhole metric
        Ip("-n", InternetNs, "route", "add", TestNet.Supernet4, "via", TestNet.HostLink4, "metric", "100");
        Shell.Try("ip", "-n", InternetNs, "-6", "route", "add", "default", "via", TestNet.HostLink6);
        Shell.Try("ip", "-n", InternetNs, "-6", "route", "add", TestNet.Supernet6, "via", TestNet.HostLink6, "metric", "100");
        // the host namespace routes containers' IPv6 (dual-stack test networks); only inside our namespace
        Shell.Run("ip", "netns", "exec", HostNs, "sysctl", "-qw", "net.ipv6.conf.all.forwarding=1");
        Log($"namespaces {HostNs} and {InternetNs} ready");
    }

    private static void RequireUnrouted(string ns, string probeAddress)
    {
        var (code, outp, err) = Shell.Try("ip", "-n", ns, "route", "get", probeAddress);
        if (code == 0 && !outp.Contains("blackhole") && !outp.Contains("unreachable"))
            throw new InvalidOperationException($"{probeAddress} is already routed in {ns}: {outp}{err}");
    }

    private async Task StartDockerdAsync()
    {
        Directory.CreateDirectory(DataRoot);
        Directory.CreateDirectory(ExecRoot);
        // the DNS every container without --dns gets, in a config file (not --dns) so that WhaleWall
        // can read it like an operator's /etc/docker/daemon.json
        File.WriteAllText(DaemonConfig, $$"""{"dns": ["{{TestNet.Dns}}"]}""" + "\n");
        // nsenter (not `ip netns exec`, which remounts /sys and breaks dockerd's cgroup detection)
        _dockerd = E2eProcess.StartLogged(DockerdLog, null,
            "nsenter", "--net=" + HostNsPath, Dockerd,
            "-H", DockerHost,
            "--data-root", DataRoot,
            "--exec-root", ExecRoot,
            "--pidfile", DockerPidFile,
            "--bip", TestNet.DockerBip,
            "--default-address-pool", $"base={TestNet.DockerAddressPool},size={TestNet.DockerAddressPoolSize}",
            "--config-file", DaemonConfig,
            "--storage-driver", "overlay2");

        Docker = new DockerClientBuilder().WithEndpoint(new Uri(DockerHost)).Build();
        var sw = Stopwatch.StartNew();
        Exception? last = null;
        while (sw.Elapsed < TimeSpan.FromSeconds(60))
        {
            if (_dockerd.HasExited)
                throw new InvalidOperationException($"dockerd exited with {_dockerd.ExitCode}:\n{E2eProcess.Tail(DockerdLog)}");
            if (File.Exists(DockerSocket))
            {
                try
                {
                    await Docker.System.PingAsync();
                    Log($"dockerd pid {_dockerd.Id} ready in {sw.ElapsedMilliseconds} ms");
                    return;
                }
                catch (Exception e) { last = e; }
            }
            await Task.Delay(100);
        }
        throw new TimeoutException($"dockerd not ready after 60 s ({last?.Message}):\n{E2eProcess.Tail(DockerdLog)}");
    }

    /// <summary>Stops the harness' dockerd by pid, as an operator's restart would (its
    /// containers stop with it; containerd exits with it).</summary>
    public async Task StopDockerdAsync()
    {
        if (_dockerd is null) return;
        var containerdPid = E2eProcess.ReadPidFile(Path.Combine(ExecRoot, "containerd", "containerd.pid"));
        if (!await E2eProcess.TerminateAsync(_dockerd.Id, TimeSpan.FromSeconds(30)))
            Log("dockerd needed SIGKILL");
        _dockerd.Dispose();
        _dockerd = null;
        if (containerdPid > 0) await E2eProcess.WaitExitAsync(containerdPid, TimeSpan.FromSeconds(10));
        Docker?.Dispose();
    }

    /// <summary>Starts dockerd again with the same arguments, data root and socket.</summary>
    public Task StartDockerdAgainAsync() => StartDockerdAsync();

    public async ValueTask DisposeAsync()
    {
        var sw = Stopwatch.StartNew();
        var errors = new List<string>();
        lock (_gate)
        {
            foreach (var s in _servers) { try { s.Dispose(); } catch (Exception e) { errors.Add(e.Message); } }
            _servers.Clear();
        }

        if (Docker is not null && _dockerd is { HasExited: false })
        {
            string[] ids;
            lock (_gate) ids = _containers.ToArray();
            await Task.WhenAll(ids.Select(async id =>
            {
                try { await Docker.Containers.RemoveContainerAsync(id, new ContainerRemoveParameters { Force = true }); }
                catch (DockerContainerNotFoundException) { }
                catch (Exception e) { errors.Add($"rm {id}: {e.Message}"); }
            }));
            foreach (var n in _networks)
            {
                try { await Docker.Networks.DeleteNetworkAsync(n); } catch (Exception e) { errors.Add($"network rm {n}: {e.Message}"); }
            }
        }

        // stop dockerd by pid; containerd is its child and exits with it
        var containerdPid = E2eProcess.ReadPidFile(Path.Combine(ExecRoot, "containerd", "containerd.pid"));
        if (_dockerd is not null)
        {
            if (!await E2eProcess.TerminateAsync(_dockerd.Id, TimeSpan.FromSeconds(20)))
                errors.Add("dockerd needed SIGKILL");
            _dockerd.Dispose();
        }
        foreach (var pid in new[] { E2eProcess.ReadPidFile(DockerPidFile), containerdPid })
        {
            if (pid > 0 && E2eProcess.IsAlive(pid) && IsOurs(pid))
                await E2eProcess.TerminateAsync(pid, TimeSpan.FromSeconds(5));
        }
        Docker?.Dispose();

        // leftover mounts under our directory (overlay, netns bind mounts, shm), deepest first
        UnmountUnder(Dir);

        foreach (var ns in _createdNamespaces.AsEnumerable().Reverse())
        {
            var r = Shell.Try("ip", "netns", "del", ns);
            if (r.Code != 0) errors.Add($"netns del {ns}: {r.Err.Trim()}");
        }
        _createdNamespaces.Clear();

        try { if (Directory.Exists(Dir)) Directory.Delete(Dir, recursive: true); }
        catch (Exception e)
        {
            // a mount that only went away lazily: try once more
            UnmountUnder(Dir);
            try { Directory.Delete(Dir, recursive: true); } catch { errors.Add($"rm -r {Dir}: {e.Message}"); }
        }
        ShutdownTime = sw.Elapsed;
        Log($"harness {RunId} down in {ShutdownTime.TotalMilliseconds:F0} ms" +
            (errors.Count > 0 ? "; problems: " + string.Join("; ", errors) : ""));
    }

    /// <summary>Only pids whose command line mentions our directory (pid files can be stale).</summary>
    private bool IsOurs(int pid)
    {
        try { return File.ReadAllText($"/proc/{pid}/cmdline").Replace('\0', ' ').Contains(Dir); }
        catch (IOException) { return false; }
    }

    private static void UnmountUnder(string dir)
    {
        var mounts = File.ReadAllLines("/proc/self/mountinfo")
            .Select(l => l.Split(' ')[4])
            .Select(p => p.Replace("\\040", " "))
            .Where(p => p == dir || p.StartsWith(dir + "/"))
            .Distinct()
            .OrderByDescending(p => p.Length);
        foreach (var m in mounts)
        {
            if (Shell.Try("umount", m).Code != 0) Shell.Try("umount", "-l", m);
        }
    }

    // ------------------------------------------------------------------ docker helpers

    /// <summary>Creates a user-defined bridge network (subnet from the test pool).</summary>
    public async Task<string> CreateNetworkAsync(string name, IDictionary<string, string>? labels = null)
    {
        var resp = await Docker.Networks.CreateNetworkAsync(new NetworksCreateParameters
        {
            Name = name,
            Driver = "bridge",
            Labels = labels ?? new Dictionary<string, string>(),
        });
        lock (_gate) _networks.Add(resp.ID);
        return resp.ID;
    }

    /// <summary>Creates a user-defined bridge network with a given IPv4 subnet (test ranges only),
    /// so containers can be given fixed addresses on it.</summary>
    public async Task<string> CreateNetworkAsync(string name, string subnet4)
    {
        TestNet.Guard(subnet4.Split('/')[0]);
        var resp = await Docker.Networks.CreateNetworkAsync(new NetworksCreateParameters
        {
            Name = name,
            Driver = "bridge",
            IPAM = new IPAM { Config = [new IPAMConfig { Subnet = subnet4 }] },
        });
        lock (_gate) _networks.Add(resp.ID);
        return resp.ID;
    }

    /// <summary>The Linux bridge of a network (what `ip link` calls it in the host namespace).</summary>
    public async Task<string> BridgeNameAsync(string network)
    {
        var n = await Docker.Networks.InspectNetworkAsync(network);
        return n.Options is { } o && o.TryGetValue("com.docker.network.bridge.name", out var name) ? name : "br-" + n.ID[..12];
    }

    /// <summary>Creates a dual-stack bridge network with the given subnets (test ranges only).</summary>
    public async Task<string> CreateDualStackNetworkAsync(string name, string subnet4, string subnet6)
    {
        TestNet.Guard(subnet4.Split('/')[0]);
        TestNet.Guard(subnet6.Split('/')[0]);
        var resp = await Docker.Networks.CreateNetworkAsync(new NetworksCreateParameters
        {
            Name = name,
            Driver = "bridge",
            EnableIPv6 = true,
            IPAM = new IPAM { Config = [new IPAMConfig { Subnet = subnet4 }, new IPAMConfig { Subnet = subnet6 }] },
        });
        lock (_gate) _networks.Add(resp.ID);
        return resp.ID;
    }

    /// <summary>Creates (and by default starts) a busybox container sleeping for an hour,
    /// with the test DNS server as its resolver.</summary>
    public async Task<TestContainer> RunContainerAsync(string name, ContainerOptions? options = null)
    {
        options ??= new ContainerOptions();
        var exposed = new Dictionary<string, EmptyStruct>();
        var bindings = new Dictionary<string, IList<PortBinding>>();
        foreach (var (proto, map) in new[] { ("tcp", options.PublishTcp), ("udp", options.PublishUdp) })
            foreach (var (cport, hport) in map)
            {
                exposed[$"{cport}/{proto}"] = default;
                bindings[$"{cport}/{proto}"] = new List<PortBinding> { new() { HostPort = hport.ToString() } };
            }

        var create = new CreateContainerParameters
        {
            Name = name,
            Image = Image,
            Cmd = options.Cmd.ToList(),
            Labels = new Dictionary<string, string>(options.Labels),
            ExposedPorts = exposed,
            HostConfig = new HostConfig
            {
                NetworkMode = options.Network ?? "bridge",
                PortBindings = bindings,
                DNS = options.OwnDns ? new List<string> { TestNet.Dns } : null,
                CapAdd = options.CapAdd.Count > 0 ? options.CapAdd.ToList() : null,
            },
        };
        if (options.Ipv4Address is { } fixedIp)
        {
            if (options.Network is null) throw new ArgumentException("a fixed address needs a user-defined network");
            create.NetworkingConfig = new NetworkingConfig
            {
                EndpointsConfig = new Dictionary<string, EndpointSettings>
                {
                    [options.Network] = new() { IPAMConfig = new EndpointIPAMConfig { IPv4Address = TestNet.Guard(fixedIp) } },
                },
            };
        }
        var resp = await Docker.Containers.CreateContainerAsync(create);
        lock (_gate) _containers.Add(resp.ID);
        var c = new TestContainer(this, resp.ID, name, options.Network ?? "bridge");
        if (options.Start) await c.StartAsync();
        return c;
    }

    internal void Track(IDisposable server) { lock (_gate) _servers.Add(server); }

    /// <summary>A TCP server ("ok\n" per connection) in the internet namespace; stopped at dispose.</summary>
    public TcpServer InternetTcpServer(string ip, int port)
    {
        var s = TcpServer.Start(InternetNsPath, TestNet.Guard(ip), port);
        Track(s);
        return s;
    }

    /// <summary>A UDP echo server in the internet namespace; stopped at dispose.</summary>
    public UdpEchoServer InternetUdpServer(string ip, int port)
    {
        var s = UdpEchoServer.Start(InternetNsPath, TestNet.Guard(ip), port);
        Track(s);
        return s;
    }

    /// <summary>Runs `docker` (the engine-matching CLI at /usr/bin/docker) against this engine.</summary>
    public (int Code, string Out, string Err) DockerCli(params string[] args) =>
        Shell.Try("/usr/bin/docker", new[] { "-H", DockerHost }.Concat(args).ToArray());

    public string DockerdLogTail(int lines = 40) => E2eProcess.Tail(DockerdLog, lines);
}

/// <summary>A container of the harness' engine.</summary>
public sealed class TestContainer
{
    private readonly DockerHarness _h;
    public string Id { get; }
    public string Name { get; }
    public string Network { get; }

    internal TestContainer(DockerHarness h, string id, string name, string network)
    {
        _h = h; Id = id; Name = name; Network = network;
    }

    public Task<ContainerInspectResponse> InspectAsync() => _h.Docker.Containers.InspectContainerAsync(Id);

    public async Task StartAsync()
    {
        await _h.Docker.Containers.StartContainerAsync(Id, new ContainerStartParameters());
    }

    /// <summary>`docker stop` (the default command exits on SIGTERM at once).</summary>
    public async Task StopAsync()
    {
        await _h.Docker.Containers.StopContainerAsync(Id, new ContainerStopParameters { WaitBeforeKillSeconds = 5 });
    }

    /// <summary>`docker kill` (SIGKILL).</summary>
    public async Task KillAsync()
    {
        await _h.Docker.Containers.KillContainerAsync(Id, new ContainerKillParameters { Signal = "KILL" });
    }

    public async Task RemoveAsync()
    {
        await _h.Docker.Containers.RemoveContainerAsync(Id, new ContainerRemoveParameters { Force = true });
    }

    /// <summary>The container's IPv4 address on a network (default: the one it was created on).</summary>
    public async Task<string> IpAsync(string? network = null)
    {
        var i = await InspectAsync();
        var net = network ?? Network;
        if (i.NetworkSettings?.Networks is { } nets && nets.TryGetValue(net, out var ep) && !string.IsNullOrEmpty(ep.IPAddress))
            return ep.IPAddress;
        throw new InvalidOperationException($"container {Name} has no IPv4 address on {net}");
    }

    public async Task<string> Ipv6Async(string? network = null)
    {
        var i = await InspectAsync();
        var net = network ?? Network;
        if (i.NetworkSettings?.Networks is { } nets && nets.TryGetValue(net, out var ep) && !string.IsNullOrEmpty(ep.GlobalIPv6Address))
            return ep.GlobalIPv6Address;
        throw new InvalidOperationException($"container {Name} has no IPv6 address on {net}");
    }

    /// <summary>The pid of the container's init process (State.Pid); 0 if not running.</summary>
    public async Task<int> PidAsync() => (int)(await InspectAsync()).State.Pid;

    /// <summary>The container's network namespace (via its init pid): sockets made there behave
    /// exactly like a process in the container.</summary>
    public async Task<string> NsPathAsync()
    {
        var pid = await PidAsync();
        if (pid <= 0) throw new InvalidOperationException($"container {Name} is not running");
        return Netns.OfPid(pid);
    }

    /// <summary>A TCP server ("ok\n" per connection) inside the container's namespace.</summary>
    public async Task<TcpServer> ListenTcpAsync(int port)
    {
        var s = TcpServer.Start(await NsPathAsync(), await IpAsync(), port);
        _h.Track(s);
        return s;
    }

    public async Task<UdpEchoServer> ListenUdpAsync(int port)
    {
        var s = UdpEchoServer.Start(await NsPathAsync(), await IpAsync(), port);
        _h.Track(s);
        return s;
    }

    public override string ToString() => $"{Name} ({Id[..12]})";
}
