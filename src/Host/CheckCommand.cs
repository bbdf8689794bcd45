using System.Collections.Immutable;
using System.CommandLine;
using System.Text.Encodings.Web;
using System.Text.Json;
using WhaleWall.Firewall.Check;
using WhaleWall.Firewall.Decide;

namespace WhaleWall.Host;

/// <summary>`whalewall check`: decides labels offline, without Docker and without root, exactly
/// as the daemon would: same decision entry point, same environment (<c>GATEWAY_NETWORKS</c>,
/// <c>DEFAULT_OUTBOUND</c>, read like the daemon reads them; flags override them), the networks
/// and network mode a compose file declares. Exit 0 when every service would be enforced (or is
/// not managed), 1 when one would fail closed or be unfilterable, 2 on usage errors.</summary>
public static class CheckCommand
{
    /// <summary><paramref name="env"/>, <paramref name="stdout"/>, <paramref name="stderr"/>: the
    /// process's by default; tests pass their own and invoke the command as the CLI does.</summary>
    public static Command Create(Func<string, string?>? env = null, TextWriter? stdout = null, TextWriter? stderr = null)
    {
        var compose = new Option<FileInfo?>("--compose") { Description = "A compose file: checks every service's labels, networks and network_mode" };
        var labels = new Option<string[]>("--label") { Description = "A label key=value (repeatable)", AllowMultipleArgumentsPerToken = false };
        var networks = new Option<string[]>("--network")
        {
            Description = "For --label: a network NAME[:DRIVER] the container is on (repeatable; default: Docker's bridge), " +
                          "or host, none, container:NAME as with docker run",
            AllowMultipleArgumentsPerToken = false,
        };
        var gateway = new Option<string?>("--gateway-networks") { Description = "Deny-by-default mode as the daemon's GATEWAY_NETWORKS (overrides the environment)" };
        var defaultOutbound = new Option<string?>("--default-outbound") { Description = "As the daemon's DEFAULT_OUTBOUND (overrides the environment)" };
        var printNft = new Option<bool>("--print-nft") { Description = "Show the nftables elements and chains the labels compile to" };
        var json = new Option<bool>("--json") { Description = "Machine-readable verdicts" };
        var command = new Command("check", "Validate WhaleWall labels offline, deciding as the daemon would")
            { compose, labels, networks, gateway, defaultOutbound, printNft, json };
        command.SetAction(result =>
        {
            var input = new Input(result.GetValue(compose), result.GetValue(labels) ?? [], result.GetValue(networks) ?? [],
                result.GetValue(gateway), result.GetValue(defaultOutbound), result.GetValue(printNft), result.GetValue(json));
            return Run(input, env ?? Environment.GetEnvironmentVariable, stdout ?? Console.Out, stderr ?? Console.Error);
        });
        return command;
    }

    private sealed record Input(FileInfo? Compose, string[] Labels, string[] Networks, string? GatewayNetworks,
        string? DefaultOutbound, bool PrintNft, bool Json);

    private static int Run(Input input, Func<string, string?> env, TextWriter stdout, TextWriter stderr)
    {
        // the daemon's variables, as Options reads them; a flag stands for its variable
        var (context, errors) = DecisionContext.FromSettings(
            input.GatewayNetworks ?? env("GATEWAY_NETWORKS"),
            input.DefaultOutbound ?? env("DEFAULT_OUTBOUND"));
        if (context is null)
        {
            stderr.WriteLine($"whalewall check: {string.Join("; ", errors)}");
            return 2;
        }
        if (DecisionContext.ProxySetting(env("WHALEWALL_DNS_PROXY")) is not { } proxy)
        {
            stderr.WriteLine("whalewall check: WHALEWALL_DNS_PROXY must be on or off");
            return 2;
        }
        if (ContainerMode.Parse(env("WHALEWALL_MODE")) is not { } globalMode)
        {
            stderr.WriteLine("whalewall check: WHALEWALL_MODE must be enforce or audit");
            return 2;
        }
        context = context with { DnsProxy = proxy, Mode = globalMode };

        var services = new List<ComposeService>();
        if (input.Compose is { } compose)
        {
            if (!compose.Exists)
            {
                stderr.WriteLine($"whalewall check: {compose.FullName} does not exist");
                return 2;
            }
            var project = compose.Directory?.Name.ToLowerInvariant() ?? "default";
            var parsed = ComposeFile.Parse(File.ReadAllText(compose.FullName), project);
            if (parsed.Error is { } error)
            {
                stderr.WriteLine($"whalewall check: {compose.Name}: {error}");
                return 1;
            }
            services.AddRange(parsed.Services);
        }
        if (input.Labels.Length > 0)
        {
            var map = ImmutableDictionary.CreateBuilder<string, string>();
            foreach (var label in input.Labels)
            {
                var eq = label.IndexOf('=');
                if (eq <= 0)
                {
                    stderr.WriteLine($"whalewall check: --label \"{label}\" is not key=value");
                    return 2;
                }
                map[label[..eq]] = label[(eq + 1)..];
            }
            var (attached, mode) = Networks(input.Networks);
            services.Add(new ComposeService("labels", map.ToImmutable(), [], attached, mode));
        }
        else if (input.Networks.Length > 0)
        {
            stderr.WriteLine("whalewall check: --network describes the container of --label");
            return 2;
        }
        if (services.Count == 0)
        {
            stderr.WriteLine("whalewall check: give --compose FILE and/or --label key=value");
            return 2;
        }

        var report = CheckReport.For(services, context, input.PrintNft);
        if (input.Json) stdout.WriteLine(report.ToJson(context).ToJsonString(new JsonSerializerOptions { WriteIndented = true, Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping }));
        else stdout.Write(report.Text);
        return report.Valid ? 0 : 1;
    }

    /// <summary>--network values as docker run takes them: host, none, container:NAME set the
    /// network mode; anything else is NAME[:DRIVER] (driver default bridge).</summary>
    private static (ImmutableArray<ComposeNetwork> Networks, string? Mode) Networks(string[] values)
    {
        if (values.Length == 0) return (ComposeService.DefaultBridge, null);
        if (values.FirstOrDefault(v => v is "host" or "none" || v.StartsWith("container:", StringComparison.Ordinal)) is { } mode)
            return ([], mode);
        return ([.. values.Select(v => v.Split(':', 2) is [var name, var driver] && driver.Length > 0
            ? new ComposeNetwork(name, driver)
            : new ComposeNetwork(v.TrimEnd(':'), "bridge"))], null);
    }
}
