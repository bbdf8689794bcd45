using System.Text.Json;
using System.Text.Json.Nodes;

namespace WhaleWall.Actors.Hostnames;

/// <summary>Writes the hostname picture to a JSON file in the data directory (atomically:
/// temp file + rename), where `whalewall status` reads it.</summary>
public sealed class HostnameReportFile(string path) : IHostnameReport
{
    public const string FileName = "hostnames.json";

    public void Write(IReadOnlyList<HostnameReportEntry> names)
    {
        var doc = new JsonArray(names.Select(n => (JsonNode)new JsonObject
        {
            ["name"] = n.Name,
            ["addresses"] = new JsonArray(n.Addresses.Select(a => (JsonNode)new JsonObject
            {
                ["address"] = a.Address.ToString(),
                ["expires"] = a.Expires.ToString("O"),
            }).ToArray()),
            ["containers"] = new JsonArray(n.Containers.Select(c => (JsonNode)c).ToArray()),
        }).ToArray());
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        var temp = path + ".tmp";
        File.WriteAllText(temp, doc.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
        File.Move(temp, path, overwrite: true);
    }

    public static JsonArray Read(string path) =>
        File.Exists(path) ? JsonNode.Parse(File.ReadAllText(path)) as JsonArray ?? [] : [];
}
