namespace WhaleWall.Bench;

/// <summary>Where the daemon's RSS goes (issue 14): the same daemon process (stand-in Docker
/// API, <see cref="DaemonAtScale"/>) started once per runtime setting, given as the runtime's
/// environment variables (each the same as the runtimeconfig knob), idle and with containers.
/// Only with `--only rss-knobs`: it restarts the daemon many times.</summary>
public static class RssKnobs
{
    public static readonly (string Name, Dictionary<string, string> Env)[] Variants =
    [
        ("as built (malloc_trim every 10 s)", new()),
        ("conserve memory (DOTNET_GCConserveMemory=5)", new() { ["DOTNET_GCConserveMemory"] = "5" }),
        ("no tiered PGO (DOTNET_TieredPGO=0)", new() { ["DOTNET_TieredPGO"] = "0" }),
        ("no W^X double mapping (DOTNET_EnableWriteXorExecute=0)", new() { ["DOTNET_EnableWriteXorExecute"] = "0" }),
        ("no concurrent GC (DOTNET_gcConcurrent=0)", new() { ["DOTNET_gcConcurrent"] = "0" }),
        ("no tiered compilation (DOTNET_TieredCompilation=0)", new() { ["DOTNET_TieredCompilation"] = "0" }),
        ("no ReadyToRun code (DOTNET_ReadyToRun=0)", new() { ["DOTNET_ReadyToRun"] = "0" }),
        ("Server GC (DOTNET_gcServer=1)", new() { ["DOTNET_gcServer"] = "1" }),
        ("Server GC, DATAS off (DOTNET_gcServer=1, DOTNET_GCDynamicAdaptationMode=0)", new() { ["DOTNET_gcServer"] = "1", ["DOTNET_GCDynamicAdaptationMode"] = "0" }),
        ("gen0 budget at least 4 MB (DOTNET_GCgen0size=0x400000: a floor, not a cap)", new() { ["DOTNET_GCgen0size"] = "0x400000" }),
    ];

    public static async Task RunAsync(Ctx ctx)
    {
        var present = ctx.Short ? 20 : 1000;
        var settle = TimeSpan.FromSeconds(ctx.Short ? 2 : 10);
        var s = await DaemonAtScale.PrepareAsync(ctx, "k");
        var baseEnv = new Dictionary<string, string>(s.Daemon.ExtraEnvironment);
        foreach (var (name, env) in Variants)
        {
            s.Daemon.ExtraEnvironment.Clear();
            foreach (var (k, v) in baseEnv.Concat(env)) s.Daemon.ExtraEnvironment[k] = v;
            s.Docker.Clear();
            await s.Daemon.StartAsync();
            await Task.Delay(settle);
            var idle = DaemonAtScale.Memory.Of(s.Daemon.Pid);
            var idleGc = await DaemonAtScale.Memory.ScrapeAsync(s.Ns);
            await s.Daemon.StopAsync();
            DaemonAtScale.DropTable(s);

            for (var i = 0; i < present; i++) s.Docker.Seed(i);
            await s.Daemon.StartAsync(TimeSpan.FromSeconds(180));
            var startup = s.Daemon.LastStartTime;
            await Task.Delay(settle);
            var loaded = DaemonAtScale.Memory.Of(s.Daemon.Pid);
            var loadedGc = await DaemonAtScale.Memory.ScrapeAsync(s.Ns);
            await s.Daemon.StopAsync();
            DaemonAtScale.DropTable(s);
            ctx.Log($"rss {name}: idle {idle} {idleGc}; with {present}: start-up {startup.TotalMilliseconds:0} ms, {loaded} {loadedGc}");
            ctx.Report.Add($"RSS setting: {name}",
                $"idle {Ctx.Mb(idle.Rss)} ({idle.Split}; {idleGc}); with {present:N0} {Ctx.Mb(loaded.Rss)} ({loaded.Split}; {loadedGc}); start-up {Stats.Ms(startup.TotalMilliseconds)}");
        }
    }
}
