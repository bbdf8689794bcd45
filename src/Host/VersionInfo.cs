using System.Reflection;

namespace WhaleWall.Host;

public static class VersionInfo
{
    public static string Text =>
        typeof(VersionInfo).Assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion.Split('+')[0]
        ?? typeof(VersionInfo).Assembly.GetName().Version?.ToString() ?? "unknown";
}
