using System.Collections.Immutable;
using System.CommandLine;
using WhaleWall.Firewall.Check;

namespace WhaleWall.Host;

/// <summary>`whalewall check`: validates labels offline, without Docker and without root, so
/// people can run it in their CI. Exit 0 when all are valid, 1 with the errors otherwise.</summary>
public static class CheckCommand
{
    public static Command Create()
    {
        var compose = new Option<FileInfo?>("--compose") { Description = "A compose file: checks every service's labels" };
        var labels = new Option<string[]>("--label") { Description = "A label key=value (repeatable)", AllowMultipleArgumentsPerToken = false };
        var printNft = new Option<bool>("--print-nft") { Description = "Show the nftables elements and chains the labels compile to" };
        var command = new Command("check", "Validate WhaleWall labels offline") { compose, labels, printNft };
        command.SetAction(result => Run(result.GetValue(compose), result.GetValue(labels) ?? [], result.GetValue(printNft)));
        return command;
    }

    private static int Run(FileInfo? compose, string[] labels, bool printNft)
    {
        var services = new List<ComposeService>();
        if (compose is not null)
        {
            if (!compose.Exists)
            {
                Console.Error.WriteLine($"whalewall check: {compose.FullName} does not exist");
                return 2;
            }
            var project = compose.Directory?.Name.ToLowerInvariant() ?? "default";
            var parsed = ComposeFile.Parse(File.ReadAllText(compose.FullName), project);
            if (parsed.Error is { } error)
            {
                Console.Error.WriteLine($"whalewall check: {compose.Name}: {error}");
                return 1;
            }
            services.AddRange(parsed.Services);
        }
        if (labels.Length > 0)
        {
            var map = ImmutableDictionary.CreateBuilder<string, string>();
            foreach (var label in labels)
            {
                var eq = label.IndexOf('=');
                if (eq <= 0)
                {
                    Console.Error.WriteLine($"whalewall check: --label \"{label}\" is not key=value");
                    return 2;
                }
                map[label[..eq]] = label[(eq + 1)..];
            }
            services.Add(new ComposeService("labels", map.ToImmutable(), []));
        }
        if (services.Count == 0)
        {
            Console.Error.WriteLine("whalewall check: give --compose FILE and/or --label key=value");
            return 2;
        }

        var report = CheckReport.For(services, printNft);
        Console.Write(report.Text);
        return report.Valid ? 0 : 1;
    }
}
