using System.Runtime.InteropServices;
using WhaleWall.Bench;
using WhaleWall.Firewall.Kernel;

// dotnet run --project bench/WhaleWall.Bench -c Release -- [--short] [--out FILE] [--only PART,...]
// Needs root (nftables, network namespaces, a private dockerd). Touches only what it creates:
// table inet wwbench_<pid> in the namespace it runs in, namespaces wwb<pid>*, a harness dockerd.
// the stand-in Docker API as a process of its own (StandInDockerProcess starts it)
if (args is ["--stand-in-docker", var standInSocket]) return StandInDocker.Serve(standInSocket);
var isShort = args.Contains("--short");
var outIndex = Array.IndexOf(args, "--out");
var outFile = outIndex >= 0 && outIndex + 1 < args.Length ? args[outIndex + 1] : null;
// --only PART[,PART]: namespaces, present, real (the real-container churn alone), daemon, bulk, dns, dns-proxy,
// datapath, binding (default: all); rss-knobs (the daemon's RSS per runtime setting) runs only when named
var onlyIndex = Array.IndexOf(args, "--only");
var only = onlyIndex >= 0 && onlyIndex + 1 < args.Length ? args[onlyIndex + 1].Split(',') : null;
bool Part(string name) => only is null ? name != "rss-knobs" : only.Contains(name);
if (Environment.UserName != "root" && geteuid() != 0)
{
    Console.Error.WriteLine("wwbench: needs root (nftables, network namespaces, dockerd)");
    return 2;
}

Cleanup.InstallHandlers();
using var lib = new LibNftables(); // early: libnftables 1.0.x aborts if its socket fd is >= 1024
var ctx = new Ctx(isShort, new TimedNftables(lib))
{
    // the daemon's and iperf3's logs go beside the table (default: ./.artifacts)
    ArtifactsDir = outFile is not null ? Path.GetDirectoryName(Path.GetFullPath(outFile))! : Path.GetFullPath(".artifacts"),
};
Directory.CreateDirectory(ctx.ArtifactsDir);
ctx.Report.Verdicts = !isShort;
Cleanup.Register("table " + ctx.Table, () => Ctx.DropTableWithFreshContext(ctx.Table));

var machine = Machine.Describe();
var loadAtStart = Machine.LoadAverage();
ctx.Log($"wwbench {(isShort ? "--short" : "full")}: table inet {ctx.Table} in this (host) network namespace; {machine}");
var exit = 0;
try
{
    if (only?.Contains("real") == true) await RealContainers.RunAloneAsync(ctx);
    if (Part("namespaces")) NamespaceCost.Run(ctx);

    if (Part("present"))
    await using (var present = await Present.StartAsync(ctx))
    {
        await present.ChurnAsync(ctx);
        var harness = await RealContainers.StartHarnessAsync(ctx);
        await RealContainers.ChurnAsync(ctx, harness, present);
        await present.DisposeAsync();
        await RealContainers.DaemonAsync(ctx, harness);
        await RealContainers.StopHarnessAsync(harness);
    }
    if (Part("present")) ctx.DropTable();

    if (Part("daemon")) await DaemonAtScale.RunAsync(ctx);
    if (Part("rss-knobs")) await RssKnobs.RunAsync(ctx);

    if (Part("bulk"))
    {
        var system = Ctx.NewActorSystem("wwbench-bulk");
        try { await Bulk.RunAsync(ctx, system); }
        finally { await system.Terminate(); }
    }

    if (Part("dns")) await DnsChange.RunAsync(ctx);
    if (Part("dns-proxy"))
    {
        await DnsProxyLatency.RunAsync(ctx);
        await DnsProxyCommit.RunAsync(ctx);
    }
    if (Part("datapath")) await Datapath.RunAsync(ctx);
    if (Part("binding")) await BindingCost.RunAsync(ctx);
}
catch (Exception e)
{
    Console.Error.WriteLine($"wwbench: failed: {e}");
    exit = 1;
}
finally
{
    Cleanup.RunAll();
}

var table = ctx.Report.Render($"WhaleWall bench ({(isShort ? "--short, figures not meaningful" : "full")}), {DateTime.UtcNow:yyyy-MM-dd HH:mm} UTC, {machine}; load average {loadAtStart} at start, {Machine.LoadAverage()} at end");
Console.WriteLine();
Console.WriteLine(table);
if (outFile is not null) File.WriteAllText(outFile, table);
return exit;

[DllImport("libc")]
static extern uint geteuid();
