using Docker.DotNet;
using Docker.DotNet.Models;

namespace WhaleWall.TestSupport;

/// <summary>A local image made from the busybox-static binary (there is no registry here):
/// a rootfs with /bin/busybox and a symlink per applet, imported as a single layer.</summary>
public static class BusyboxImage
{
    public const string Repo = "ww-busybox";
    public const string Tag = "test";
    public const string Name = Repo + ":" + Tag;
    public const string BusyboxPath = "/bin/busybox";

    /// <summary>Builds the rootfs under <paramref name="workDir"/> and imports it unless present.</summary>
    public static async Task<string> EnsureAsync(DockerClient docker, string workDir)
    {
        var existing = await docker.Images.ListImagesAsync(new ImagesListParameters { All = true });
        if (existing.Any(i => i.RepoTags?.Contains(Name) == true)) return Name;

        if (!File.Exists(BusyboxPath))
            throw new InvalidOperationException($"{BusyboxPath} is missing: apt-get install busybox-static");

        var rootfs = Path.Combine(workDir, "rootfs");
        var bin = Path.Combine(rootfs, "bin");
        Directory.CreateDirectory(bin);
        foreach (var d in new[] { "etc", "tmp", "proc", "sys", "dev", "root" })
            Directory.CreateDirectory(Path.Combine(rootfs, d));
        File.Copy(BusyboxPath, Path.Combine(bin, "busybox"), overwrite: true);
        var applets = Shell.Run(BusyboxPath, "--list")
            .Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        foreach (var applet in applets.Where(a => a != "busybox" && !a.Contains('/')))
        {
            var link = Path.Combine(bin, applet);
            if (!File.Exists(link)) File.CreateSymbolicLink(link, "busybox");
        }
        File.WriteAllText(Path.Combine(rootfs, "etc", "passwd"), "root:x:0:0:root:/root:/bin/sh\n");
        File.WriteAllText(Path.Combine(rootfs, "etc", "group"), "root:x:0:\n");

        var tar = Path.Combine(workDir, "rootfs.tar");
        Shell.Run("tar", "-C", rootfs, "-cf", tar, ".");
        await using (var stream = File.OpenRead(tar))
        {
            await docker.Images.CreateImageAsync(
                new ImagesCreateParameters { FromSrc = "-", Repo = Repo, Tag = Tag },
                stream, new AuthConfig(), new Progress<JSONMessage>());
        }
        File.Delete(tar);
        Directory.Delete(rootfs, recursive: true);

        var after = await docker.Images.ListImagesAsync(new ImagesListParameters { All = true });
        if (!after.Any(i => i.RepoTags?.Contains(Name) == true))
            throw new InvalidOperationException($"image import of {Name} did not produce the image");
        return Name;
    }
}
