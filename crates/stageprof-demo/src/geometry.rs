//! Calibrated pinhole cameras with radial distortion (two coefficients).
//!
//! All cameras share one orientation (optical axis along +z, the surface
//! in front of them) and differ by their centre; units are millimetres.

/// A calibrated camera.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Camera {
    /// Focal length in pixels, x.
    pub fx: f32,
    /// Focal length in pixels, y.
    pub fy: f32,
    /// Principal point, x.
    pub cx: f32,
    /// Principal point, y.
    pub cy: f32,
    /// Radial distortion: r_d = r (1 + k1 r^2 + k2 r^4), in normalized coordinates.
    pub k1: f32,
    /// Radial distortion, fourth order.
    pub k2: f32,
    /// Centre of projection in world coordinates (mm).
    pub center: [f32; 3],
    /// Image width in pixels.
    pub width: usize,
    /// Image height in pixels.
    pub height: usize,
}

impl Camera {
    fn radial(&self, r2: f32) -> f32 {
        1.0 + self.k1 * r2 + self.k2 * r2 * r2
    }

    /// Normalized undistorted coordinates to distorted pixel coordinates.
    pub fn distort(&self, xn: f32, yn: f32) -> (f32, f32) {
        let f = self.radial(xn * xn + yn * yn);
        (self.fx * xn * f + self.cx, self.fy * yn * f + self.cy)
    }

    /// Distorted pixel coordinates to normalized undistorted ones (fixed-point iteration).
    pub fn undistort(&self, u: f32, v: f32) -> (f32, f32) {
        let (xd, yd) = ((u - self.cx) / self.fx, (v - self.cy) / self.fy);
        let (mut x, mut y) = (xd, yd);
        for _ in 0..20 {
            let f = self.radial(x * x + y * y);
            x = xd / f;
            y = yd / f;
        }
        (x, y)
    }

    /// Pixel coordinates in the undistorted image of a world point.
    pub fn project(&self, p: [f32; 3]) -> (f32, f32) {
        let z = p[2] - self.center[2];
        (self.fx * (p[0] - self.center[0]) / z + self.cx, self.fy * (p[1] - self.center[1]) / z + self.cy)
    }

    /// The world point at depth `z` (world) seen at undistorted pixel (u, v).
    pub fn unproject(&self, u: f32, v: f32, z: f32) -> [f32; 3] {
        let d = z - self.center[2];
        [self.center[0] + (u - self.cx) / self.fx * d, self.center[1] + (v - self.cy) / self.fy * d, z]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cam() -> Camera {
        Camera {
            fx: 400.0,
            fy: 400.0,
            cx: 160.0,
            cy: 120.0,
            k1: -0.12,
            k2: 0.03,
            center: [10.0, -5.0, 0.0],
            width: 320,
            height: 240,
        }
    }

    #[test]
    fn distortion_round_trips() {
        let c = cam();
        for (x, y) in [(0.0, 0.0), (0.3, -0.2), (-0.38, 0.28)] {
            let (u, v) = c.distort(x, y);
            let (x2, y2) = c.undistort(u, v);
            assert!((x - x2).abs() < 1e-5 && (y - y2).abs() < 1e-5, "{x},{y} -> {x2},{y2}");
        }
    }

    #[test]
    fn projection_round_trips() {
        let c = cam();
        let p = c.unproject(33.0, 201.0, 1000.0);
        let (u, v) = c.project(p);
        assert!((u - 33.0).abs() < 1e-3 && (v - 201.0).abs() < 1e-3);
    }
}
