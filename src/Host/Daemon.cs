using Akka.Actor;
using Akka.Hosting;
using Docker.DotNet;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using WhaleWall.Actors.Containers;
using WhaleWall.Actors.Health;
using WhaleWall.Actors.Docker;
using WhaleWall.Actors.Hostnames;
using WhaleWall.Actors.Nft;
using WhaleWall.Actors.State;
using WhaleWall.Actors.Metrics;
using WhaleWall.Actors.Binding;
using WhaleWall.Actors.Flows;
using WhaleWall.Firewall.Nft;
using WhaleWall.Firewall.Binding;
using WhaleWall.Firewall.Compile;
using WhaleWall.Firewall.Decide;
using WhaleWall.Firewall.Kernel.Netlink;
using WhaleWall.Firewall.Kernel;
using WhaleWall.Host.Sandbox;
using WhaleWall.Host.Metrics;
using WhaleWall.Firewall.Dns;

namespace WhaleWall.Host;

/// <summary>The composition root: configuration -> adapters -> actors.</summary>
public static class Daemon
{
    /// <summary><paramref name="sandboxProblem"/>: what is missing of the sandbox (from
    /// <see cref="SandboxEntry.Enter"/>), reported to `/healthz`.</summary>
    public static async Task<int> RunAsync(Options options, CancellationToken ct, string? sandboxProblem = null)
    {
        // a daemon without CAP_NET_ADMIN, without the socket's group, or with a data dir owned by
        // someone else would retry forever: say what is wrong and stop
        var denied = new[] { AccessCheck.NetAdmin(), AccessCheck.DockerSocket(options.DockerHost), AccessCheck.DataDir(options.DataDir) }
            .OfType<string>().ToList();
        foreach (var problem in denied) Console.Error.WriteLine($"[ERROR] {problem}");
        if (denied.Count > 0) return 4;

        // one daemon per data directory; `flush` and `status` look at this lock (DaemonLock)
        using var daemonLock = DaemonLock.TryAcquire(options.DataDir, TimeSpan.FromSeconds(10));
        if (daemonLock is null)
        {
            Console.Error.WriteLine($"whalewall: another whalewall daemon holds {DaemonLock.PathIn(options.DataDir)}: one daemon per data directory");
            return 4;
        }
        var bridge = BridgeNetfilter.Ensure();
        foreach (var repaired in bridge.Repaired) Console.Error.WriteLine($"[WARNING] {repaired}");
        foreach (var problem in bridge.Problems) Console.Error.WriteLine($"[ERROR] {problem}");

        using var kernel = new LibNftables();
        var nft = FaultInjection.Wrap(kernel, options.DataDir);
        if (!ReferenceEquals(nft, kernel))
            Console.Error.WriteLine($"[WARNING] {FaultInjection.Variable}=1: test fault injection is ON (never in production)");
        // scrapes read the counters through a context of their own (a context is not thread-safe,
        // and reads must not wait behind the writer's transactions)
        using var counterReader = new LibNftables();
        var binding = CheckBinding(nft, options);
        var view = new DaemonView();
        var dns = options.Dns ?? DnsSettings.Default;
        // the DNS proxy (docs/dns-proxy.md); WHALEWALL_DNS_PROXY=off leaves its sets empty
        var proxyMetrics = new DnsProxyMetrics(view, line => Console.WriteLine($"[INFO] {line}"));
        using var proxy = options.Proxy is { Enabled: true } proxySettings
            ? new DnsProxyHost(proxySettings, dns,
                options.DnsServers is { Count: > 0 } servers ? servers : [.. DnsClient.NameServer.ResolveNameServers().Select(n => new System.Net.IPEndPoint(System.Net.IPAddress.Parse(n.Address), n.Port))],
                proxyMetrics)
            : null;
        var report = new DaemonReportFile(Path.Combine(options.DataDir, DaemonReportFile.FileName),
            new DaemonIdentity(Environment.ProcessId, DateTimeOffset.UtcNow, options.Node, options.Table, VersionInfo.Text, binding.Enabled,
                new DecisionSettings(Environment.GetEnvironmentVariable("GATEWAY_NETWORKS"), Environment.GetEnvironmentVariable("DEFAULT_OUTBOUND"),
                    options.Proxy?.Enabled ?? false, options.Mode)),
            proxy is null ? null : proxy.Learned);
        using var metrics = new MetricsServer(options.MetricsAddr, view, new ContainerCounters(counterReader, options.Table, view));
        WhaleWallMetrics.Initialize();
        try { metrics.Start(); }
        catch (Exception e)
        {
            // the firewall matters more than its metrics: say so loudly and go on
            Console.Error.WriteLine($"[ERROR] metrics: cannot listen on {options.MetricsAddr} ({e.Message}); /metrics and /healthz are unavailable");
        }
        var builder = new DockerClientBuilder().WithEndpoint(new Uri(options.DockerHost));
        if (options.DockerApiVersion is { } api) builder = builder.WithApiVersion(new Version(api));
        using var docker = new DockerSource(builder.Build(), options.ContainerResolvers, m => Console.Error.WriteLine($"[WARNING] {m}"));

        var host = Microsoft.Extensions.Hosting.Host.CreateApplicationBuilder();
        host.Logging.ClearProviders();
        host.Logging.AddSimpleConsole(o => { o.SingleLine = true; o.TimestampFormat = "HH:mm:ss.fff "; });
        host.Logging.SetMinimumLevel(LogLevel.Warning);
        var renewByAdd = RenewalProbe.AddRenews(nft, options.Table);
        Console.WriteLine(renewByAdd
            ? "DNS elements are renewed by an add (this kernel restarts a present element's timeout)"
            : "DNS elements are renewed by delete + add (this kernel keeps a present element's timeout on add)");
        var writerOptions = new WriterOptions(binding.Enabled, binding.GuardLease, OpenFlowCutter(), renewByAdd);
        // what the proxy taught each container before a restart (docs/dns-proxy.md "Restart")
        var learnedFile = new LearnedFile(Path.Combine(options.DataDir, LearnedFile.FileName));
        var restored = proxy is null ? LearnedSnapshot.None : ReadLearned(learnedFile, dns);
        host.Services.AddAkka("whalewall", (akka, _) =>
        {
            akka.AddHocon($"akka.loglevel = {options.AkkaLogLevel}\nakka.stdout-loglevel = {options.AkkaLogLevel}\nakka.log-dead-letters = off", HoconAddMode.Prepend)
                .AddMetricsActor(view, report)   // first: it hears the store's first health notice
                .AddContainerStoreActor(options.State)
                // audit mode and whalewall.learn: new flows from conntrack, journalled for `suggest`
                .AddFlowRecorderActor(options.Node, () => new ConntrackEvents(), NftLayout.DnsProxyPort, view)
                .AddNftWriterActor(nft, options.Table, options.LogDrops, writerOptions)
                .AddBridgePortsActor(() => new BridgePorts())
                .AddPeerDirectoryActor()
                .AddHostnamesActor(DnsClientResolver.Create(options.DnsServers, dns.LookupTimeout), dns,
                    new HostnameReportFile(Path.Combine(options.DataDir, HostnameReportFile.FileName)))
                .AddLearnedStoreActor(learnedFile, restored)
                .AddDockerEventsActor(docker, options.Gateway, binding, proxy?.Clients, restored, options.Mode);
        });

        Console.WriteLine($"whalewall {VersionInfo.Text}: table inet {options.Table}, docker {options.DockerHost}, metrics http://{options.MetricsAddr}/metrics, state {StateText(options)}, node {options.Node}");
        if (options.ContainerResolvers is { Configured.IsDefaultOrEmpty: false } resolvers)
            Console.WriteLine($"containers' resolvers (_dns_): {string.Join(",", resolvers.Configured)} (WHALEWALL_CONTAINER_DNS)");
        if (options.Gateway is { } gw)
            Console.WriteLine($"deny-by-default mode: gateway networks {(gw.AllBridges ? "(every bridge network)" : string.Join(",", gw.Include))}" +
                $"{(gw.Exclude.IsEmpty ? "" : " except " + string.Join(",", gw.Exclude))}, default outbound \"{gw.DefaultOutbound}\"");
        using var app = host.Build();
        await app.StartAsync(ct);
        var system = app.Services.GetRequiredService<ActorSystem>();
        var recorder = ActorRegistry.For(system).Get<FlowRecorder>();
        proxyMetrics.OnResolved = r => recorder.Tell(r);
        if (proxy is not null)
        {
            try
            {
                proxy.Start(ActorRegistry.For(system).Get<DockerEvents>());
                Console.WriteLine($"DNS proxy on {options.Proxy!.Listen} (WHALEWALL_DNS_PROXY=off to disable): filtered containers' DNS goes through it");
            }
            catch (Exception e)
            {
                // the redirect stays: proxied containers' queries go unanswered (fail closed), loudly
                Console.Error.WriteLine($"[ERROR] DNS proxy: cannot listen on {options.Proxy!.Listen} ({e.Message}); filtered containers cannot resolve names");
            }
        }
        else Console.WriteLine("DNS proxy off (WHALEWALL_DNS_PROXY=off): names in rules are resolved by the daemon, wildcards are refused");
        if (bindingProblem is not null)
            system.EventStream.Publish(new HealthNotices.ComponentHealth(HealthNotices.Components.Binding, bindingProblem));
        if (sandboxProblem is not null)
            system.EventStream.Publish(new HealthNotices.ComponentHealth(HealthNotices.Components.Sandbox, sandboxProblem));
        using var stopping = CancellationTokenSource.CreateLinkedTokenSource(ct);
        var bridgeWatch = WatchBridgeNetfilterAsync(system, bridge.Problem, stopping.Token);
        var housekeeping = MemoryHousekeeping.ForThisProcess(() => view.Current.TableReady)
            .RunAsync(stopping.Token, warning => Console.Error.WriteLine($"[WARNING] {warning}"));
        if (Environment.GetEnvironmentVariable(SandboxSelfTest.Variable) is { Length: > 0 } probePath)
            await SandboxSelfTest.RunAsync(probePath, Console.WriteLine);
        await app.WaitForShutdownAsync(ct);
        await stopping.CancelAsync();
        await bridgeWatch;
        await housekeeping;
        Console.WriteLine("whalewall stopped; rules stay in place (`whalewall flush` removes them)");
        return 0;
    }

    /// <summary>The learned addresses kept by the previous run, as far as they can be trusted: a
    /// file that is not what WhaleWall writes is ignored, invalid entries are dropped (each said
    /// once), expired ones left out. Never fails the start.</summary>
    private static System.Collections.Immutable.ImmutableDictionary<string, System.Collections.Immutable.ImmutableDictionary<string,
        System.Collections.Immutable.ImmutableDictionary<System.Net.IPAddress, DateTimeOffset>>> ReadLearned(LearnedFile file, DnsSettings dns)
    {
        var read = file.Read(DateTimeOffset.UtcNow, dns.MaxTtl + dns.Grace, LearningLimits.Default.PerContainer);
        foreach (var problem in read.Problems) Console.Error.WriteLine($"[WARNING] {file.Path}: {problem}");
        var addresses = read.Containers.Values.Sum(c => c.Values.Sum(a => a.Count));
        if (addresses > 0 || read.Expired > 0)
            Console.WriteLine($"learned DNS addresses kept from before the restart: {addresses} of {read.Containers.Count} containers ({read.Expired} expired meanwhile)");
        return read.Containers;
    }

    /// <summary>Publishes bridge netfilter's health at once, then checks (and repairs) it every
    /// <see cref="BridgeNetfilter.RecheckEvery"/>, publishing each change.</summary>
    private static async Task WatchBridgeNetfilterAsync(ActorSystem system, string? problem, CancellationToken ct)
    {
        system.EventStream.Publish(new HealthNotices.ComponentHealth(HealthNotices.Components.BridgeNetfilter, problem));
        using var timer = new PeriodicTimer(BridgeNetfilter.RecheckEvery);
        try
        {
            while (await timer.WaitForNextTickAsync(ct))
            {
                var result = BridgeNetfilter.Ensure();
                foreach (var repaired in result.Repaired) Console.Error.WriteLine($"[WARNING] {repaired}");
                if (result.Problem == problem) continue;
                problem = result.Problem;
                if (problem is not null) Console.Error.WriteLine($"[ERROR] {problem}");
                system.EventStream.Publish(new HealthNotices.ComponentHealth(HealthNotices.Components.BridgeNetfilter, problem));
            }
        }
        catch (OperationCanceledException) { }
    }

    private static string? bindingProblem;

    /// <summary>No flow outlives the policy that allowed it, binding or not: conntrack through
    /// ctnetlink. A kernel without it (no nf_conntrack_netlink) is logged; rules still apply to
    /// new flows.</summary>
    private static FlowCutter? OpenFlowCutter()
    {
        try { return new FlowCutter(new Conntrack()); }
        catch (Exception e)
        {
            Console.Error.WriteLine($"[ERROR] conntrack netlink unavailable ({e.Message}): flows opened before a policy change are not cut");
            return null;
        }
    }

    /// <summary>Binding needs the kernel's bridge family (nf_tables bridge): declared once here so a
    /// kernel without it is found before any container is programmed; then binding is off, and
    /// `/healthz` says so (addresses are then all WhaleWall can trust).</summary>
    private static BindingSettings CheckBinding(WhaleWall.Firewall.Nft.INftables nft, Options options)
    {
        var wanted = options.Binding ?? BindingSettings.Strict;
        if (!wanted.Enabled)
        {
            Console.WriteLine("binding to bridge ports is off (WHALEWALL_BINDING=off): rules match addresses only");
            return wanted;
        }
        var declared = nft.Run(BridgeLayout.RawSetDeclarations(options.Table));
        if (!declared.Ok)
        {
            bindingProblem = $"the kernel refused the bridge table (nf_tables bridge family missing?): {declared.Error.Trim()}; containers are not bound to their ports";
            Console.Error.WriteLine($"[ERROR] {bindingProblem}");
            return BindingSettings.Off;
        }
        Console.WriteLine($"containers bound to their bridge ports: table bridge {options.Table}; unknown addresses on guarded networks while WhaleWall is down: " +
            (wanted.GuardLease is { } lease ? $"pass once a {lease.TotalSeconds:0} s lease lapses (lenient)" : "dropped (strict)"));
        return wanted;
    }

    public static string StateText(Options options) =>
        options.State.IsSqlite ? options.State.SqliteFile : "postgresql";
}
