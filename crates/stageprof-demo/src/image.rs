//! Single-channel float images and bilinear sampling.

/// A grey image, row-major.
#[derive(Clone, Debug, PartialEq)]
pub struct Image {
    /// Pixels in a row.
    pub width: usize,
    /// Rows.
    pub height: usize,
    /// Grey levels, row by row.
    pub data: Vec<f32>,
}

impl Image {
    /// A black image.
    pub fn new(width: usize, height: usize) -> Image {
        Image { width, height, data: vec![0.0; width * height] }
    }

    /// The pixel at column `x`, row `y`.
    pub fn at(&self, x: usize, y: usize) -> f32 {
        self.data[y * self.width + x]
    }

    /// The value at a sub-pixel position; `None` outside the image.
    pub fn sample(&self, x: f32, y: f32) -> Option<f32> {
        let inside = x >= 0.0 && y >= 0.0 && x <= (self.width - 1) as f32 && y <= (self.height - 1) as f32;
        if !inside {
            return None;
        }
        let (x0, y0) = (x.floor() as usize, y.floor() as usize);
        let (x1, y1) = ((x0 + 1).min(self.width - 1), (y0 + 1).min(self.height - 1));
        let (fx, fy) = (x - x0 as f32, y - y0 as f32);
        let top = self.at(x0, y0) * (1.0 - fx) + self.at(x1, y0) * fx;
        let bottom = self.at(x0, y1) * (1.0 - fx) + self.at(x1, y1) * fx;
        Some(top * (1.0 - fy) + bottom * fy)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bilinear_sampling() {
        let img = Image { width: 2, height: 2, data: vec![0.0, 1.0, 2.0, 3.0] };
        assert_eq!(img.sample(0.5, 0.5), Some(1.5));
        assert_eq!(img.sample(1.0, 0.0), Some(1.0));
        assert_eq!(img.sample(-0.1, 0.0), None);
        assert_eq!(img.sample(0.0, 1.01), None);
    }
}
