package berka.udf;

import java.io.IOException;
import java.io.InputStream;
import java.net.URL;
import java.security.CodeSource;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;

/**
 * Which build of these functions a Spark process runs: the SHA-256 of the jar they were loaded
 * from. A client compares it with its own jar before it registers a function (through SQL's
 * reflect(), so no registration is needed to ask), because a class already on a server's class
 * path wins over a jar a session uploads.
 */
public final class BuildInfo {
  private BuildInfo() {}

  /** Hex SHA-256 of the jar holding this class, or "unknown: reason". */
  public static String jarSha256() {
    CodeSource source = BuildInfo.class.getProtectionDomain().getCodeSource();
    URL location = source == null ? null : source.getLocation();
    if (location == null) {
      return "unknown: no code source";
    }
    try (InputStream in = location.openStream()) {
      MessageDigest digest = MessageDigest.getInstance("SHA-256");
      byte[] buffer = new byte[65536];
      for (int n = in.read(buffer); n >= 0; n = in.read(buffer)) {
        digest.update(buffer, 0, n);
      }
      StringBuilder hex = new StringBuilder();
      for (byte b : digest.digest()) {
        hex.append(String.format("%02x", b));
      }
      return hex.toString();
    } catch (IOException | NoSuchAlgorithmException e) {
      return "unknown: " + location + ": " + e;
    }
  }
}
