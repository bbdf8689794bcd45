using System.CommandLine;
using WhaleWall.Host;

var run = new Command("run", "Run the daemon (default)");
run.SetAction((_, ct) => RunDaemon(ct));

var version = new Command("version", "Print the version");
version.SetAction(_ => Console.WriteLine($"whalewall {VersionInfo.Text}"));

var root = new RootCommand("WhaleWall: a firewall for Docker containers, driven by container labels")
{
    run,
    CheckCommand.Create(),
    version,
};
root.SetAction((_, ct) => RunDaemon(ct));
return await root.Parse(args).InvokeAsync();

static async Task<int> RunDaemon(CancellationToken ct)
{
    Options options;
    try { options = Options.FromEnvironment(); }
    catch (ArgumentException e)
    {
        Console.Error.WriteLine($"whalewall: {e.Message}");
        return 2;
    }
    return await Daemon.RunAsync(options, ct);
}
