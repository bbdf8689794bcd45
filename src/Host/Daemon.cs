using Akka.Hosting;
using Docker.DotNet;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using WhaleWall.Actors.Containers;
using WhaleWall.Actors.Docker;
using WhaleWall.Actors.Hostnames;
using WhaleWall.Actors.Nft;
using WhaleWall.Actors.State;
using WhaleWall.Actors.Metrics;
using WhaleWall.Firewall.Kernel;
using WhaleWall.Host.Sandbox;
using WhaleWall.Host.Metrics;

namespace WhaleWall.Host;

/// <summary>The composition root: configuration -> adapters -> actors.</summary>
public static class Daemon
{
    public static async Task<int> RunAsync(Options options, CancellationToken ct)
    {
        foreach (var problem in BridgeNetfilter.Ensure())
            Console.Error.WriteLine($"[ERROR] {problem}");

        using var kernel = new LibNftables();
        var nft = FaultInjection.Wrap(kernel, options.DataDir);
        if (!ReferenceEquals(nft, kernel))
            Console.Error.WriteLine($"[WARNING] {FaultInjection.Variable}=1: test fault injection is ON (never in production)");
        // scrapes read the counters through a context of their own (a context is not thread-safe,
        // and reads must not wait behind the writer's transactions)
        using var counterReader = new LibNftables();
        var view = new DaemonView();
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
        host.Services.AddAkka("whalewall", (akka, _) =>
        {
            akka.AddHocon($"akka.loglevel = {options.AkkaLogLevel}\nakka.stdout-loglevel = {options.AkkaLogLevel}\nakka.log-dead-letters = off", HoconAddMode.Prepend)
                .AddContainerStoreActor(options.State)
                .AddMetricsActor(view)
                .AddNftWriterActor(nft, options.Table, options.LogDrops)
                .AddPeerDirectoryActor()
                .AddHostnamesActor(DnsClientResolver.Create(options.DnsServers), options.Dns ?? DnsSettings.Default,
                    new HostnameReportFile(Path.Combine(options.DataDir, HostnameReportFile.FileName)))
                .AddDockerEventsActor(docker, options.Gateway);
        });

        Console.WriteLine($"whalewall {VersionInfo.Text}: table inet {options.Table}, docker {options.DockerHost}, metrics http://{options.MetricsAddr}/metrics, state {StateText(options)}, node {options.Node}");
        if (options.ContainerResolvers is { Configured.IsDefaultOrEmpty: false } resolvers)
            Console.WriteLine($"containers' resolvers (_dns_): {string.Join(",", resolvers.Configured)} (WHALEWALL_CONTAINER_DNS)");
        if (options.Gateway is { } gw)
            Console.WriteLine($"deny-by-default mode: gateway networks {(gw.AllBridges ? "(every bridge network)" : string.Join(",", gw.Include))}" +
                $"{(gw.Exclude.IsEmpty ? "" : " except " + string.Join(",", gw.Exclude))}, default outbound \"{gw.DefaultOutbound}\"");
        using var app = host.Build();
        await app.StartAsync(ct);
        if (Environment.GetEnvironmentVariable(SandboxSelfTest.Variable) is { Length: > 0 } probePath)
            await SandboxSelfTest.RunAsync(probePath, Console.WriteLine);
        await app.WaitForShutdownAsync(ct);
        Console.WriteLine("whalewall stopped; rules stay in place (`whalewall flush` removes them)");
        return 0;
    }

    public static string StateText(Options options) =>
        options.State.IsSqlite ? options.State.SqliteFile : "postgresql";
}
