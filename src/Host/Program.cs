using System.CommandLine;
using WhaleWall.Host;
using WhaleWall.Host.Sandbox;

var run = new Command("run", "Run the daemon (default)");
run.SetAction((_, ct) => RunDaemon(ct));

var version = new Command("version", "Print the version");
version.SetAction(_ => Console.WriteLine($"whalewall {VersionInfo.Text}"));

var jsonOption = new Option<bool>("--json") { Description = "Machine-readable output" };
var status = new Command("status", "What the running daemon enforces: its health, each container's state and why, table elements, hostnames") { jsonOption };
status.SetAction(parse => WithOptions(o => StateCommands.StatusAsync(o, parse.GetValue(jsonOption))));

var forceOption = new Option<bool>("--force") { Description = "Flush even though a daemon runs (it keeps running, with no table under it)" };
var flush = new Command("flush", "Remove WhaleWall's table and forget its state (refused while the daemon runs, unless --force)") { forceOption };
flush.SetAction(parse => WithOptions(o => StateCommands.FlushAsync(o, parse.GetValue(forceOption))));

var root = new RootCommand("WhaleWall: a firewall for Docker containers, driven by container labels")
{
    run,
    CheckCommand.Create(),
    SuggestCommand.Create(),
    ExplainCommand.Create(),
    status,
    flush,
    version,
};
root.SetAction((_, ct) => RunDaemon(ct));
return await root.Parse(args).InvokeAsync();

static async Task<int> WithOptions(Func<Options, Task<int>> body)
{
    Options options;
    try { options = Options.FromEnvironment(); }
    catch (ArgumentException e)
    {
        Console.Error.WriteLine($"whalewall: {e.Message}");
        return 2;
    }
    try { return await body(options); }
    catch (Exception e)
    {
        Console.Error.WriteLine($"whalewall: {e.Message}");
        return 1;
    }
}

static async Task<int> RunDaemon(CancellationToken ct)
{
    Options options;
    try { options = Options.FromEnvironment(); }
    catch (ArgumentException e)
    {
        Console.Error.WriteLine($"whalewall: {e.Message}");
        return 2;
    }
    string? sandboxProblem;
    try
    {
        // before anything else: in its first stage this re-executes the process (see SandboxEntry)
        sandboxProblem = SandboxEntry.Enter(options, m => Console.WriteLine(m), m => Console.Error.WriteLine("[WARNING] " + m));
    }
    catch (Exception e) when (e is IOException or InvalidOperationException or PlatformNotSupportedException)
    {
        Console.Error.WriteLine($"whalewall: {e.Message} (WHALEWALL_SANDBOX=off disables the sandbox)");
        return 3;
    }
    return await Daemon.RunAsync(options, ct, sandboxProblem);
}
